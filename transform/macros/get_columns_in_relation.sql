{#
    dbt-postgres reports every array column as type "ARRAY", which is not a
    type PostgreSQL can cast to: unit-test fixtures for models with array
    columns (cards.member_ids, tag_ids, ...) then fail with a syntax error.
    Same query as the adapter's, but arrays get their real type ("bigint[]").
#}
{% macro postgres__get_columns_in_relation(relation) -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            columns.column_name,
            case
                when columns.data_type = 'ARRAY' and element_types.typelem is not null
                    then format_type(element_types.typelem, null) || '[]'
                else columns.data_type
            end as data_type,
            columns.character_maximum_length,
            columns.numeric_precision,
            columns.numeric_scale
        from {{ relation.information_schema('columns') }} as columns
        left join pg_catalog.pg_namespace as type_schemas
            on columns.udt_schema = type_schemas.nspname
        left join pg_catalog.pg_type as element_types
            on
                columns.udt_name = element_types.typname
                and type_schemas.oid = element_types.typnamespace
        where
            columns.table_name = '{{ relation.identifier }}'
            {% if relation.schema %}
                and columns.table_schema = '{{ relation.schema }}'
            {% endif %}
        order by columns.ordinal_position
    {% endcall %}
    {% set table = load_result('get_columns_in_relation').table %}
    {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}
