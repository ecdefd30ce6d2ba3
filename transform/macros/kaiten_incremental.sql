{#
    Incremental marts rebuild only the cards that changed since their last
    build, unless something every row shows changed: the names and structure
    they read (boards, columns, users, ...) or the model's own SQL. This
    fingerprint captures both; a row stores the one it was built with and a
    different current value rebuilds every row.
    `inputs`: list of (relation, [columns]) pairs, all small tables.
#}
{% macro kaiten_dimensions_fingerprint(inputs) -%}
    {%- set parts = ["'" ~ local_md5(model.raw_code) ~ "'"] -%}
    {%- for relation, columns in inputs -%}
        {%- set row_text = 'row(' ~ columns | join(', ') ~ ')::text' -%}
        {%- do parts.append(
            "coalesce((select string_agg(" ~ row_text ~ ", '|' order by " ~ row_text ~ ")"
            ~ " from " ~ relation ~ "), '')"
        ) -%}
    {%- endfor -%}
    md5({{ parts | join(' || ') }})
{%- endmacro %}
