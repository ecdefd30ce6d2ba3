{#
    Use a configured +schema verbatim: the site reads fixed schema names
    (kaiten_site by default), not dbt's default "<target schema>_<custom>".
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
