{#
    Incremental marts rebuild only the cards that changed since their last
    build, unless something every row shows changed: the names and structure
    they read (boards, columns, users, ...) or the project's code. This
    fingerprint captures both; a row stores the one it was built with and a
    different current value rebuilds every row.
    `inputs`: list of (relation, [columns]) pairs, all small tables.
#}
{% macro kaiten_dimensions_fingerprint(inputs) -%}
    {%- set parts = ["'" ~ kaiten_code_fingerprint() ~ "'"] -%}
    {%- for relation, columns in inputs -%}
        {%- set row_text = 'row(' ~ columns | join(', ') ~ ')::text' -%}
        {%- do parts.append(
            "coalesce((select string_agg(" ~ row_text ~ ", '|' order by " ~ row_text ~ ")"
            ~ " from " ~ relation ~ "), '')"
        ) -%}
    {%- endfor -%}
    md5({{ parts | join(' || ') }})
{%- endmacro %}


{#
    A hash of the code that shapes the marts' rows: every model's SQL, the
    card macros as they render, and the casts staging applies. A new release
    of the project that changes any of it rebuilds the incremental marts in
    full on its first run, with no --full-refresh to remember.
#}
{% macro kaiten_code_fingerprint() -%}
    {%- set code = [] -%}
    {%- if execute -%}
        {#- unit tests compile without the graph -#}
        {%- for node in graph.get('nodes', {}).values() if node.resource_type == 'model' -%}
            {%- if node.package_name == project_name -%}
                {%- do code.append(node.unique_id ~ '\n' ~ node.raw_code) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do code.append(kaiten_card_flow_times('history', 'columns')) -%}
    {%- do code.append(kaiten_card_property_values('cards', 'custom_properties')) -%}
    {%- for source_type in ['text', 'jsonb', 'array', 'bigint[]', 'bigint', 'date',
                            'timestamp without time zone', 'timestamp with time zone'] -%}
        {%- for target_type in ['timestamptz', 'date', 'jsonb', 'bigint[]', 'bigint', 'boolean', 'text'] -%}
            {%- do code.append(kaiten_field({'x': source_type}, 'x', target_type)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(local_md5(code | sort | join('\n'))) }}
{%- endmacro %}
