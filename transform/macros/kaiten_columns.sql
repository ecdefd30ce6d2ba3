{#
    The loader decides the physical types of the raw tables: target-postgres
    maps date-time strings to timestamp (without time zone), arrays of scalars
    to postgres arrays, arrays of objects to jsonb, and a field that a future
    tap version drops is simply absent. Staging reads the real column types
    once per model and casts each field from whatever arrived, so the models
    stay correct across loader settings and tap versions.
#}

{% macro kaiten_source_columns(relation) %}
    {%- set types = {} -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do types.update({column.name | lower: column.data_type | lower}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(types) }}
{% endmacro %}


{#
    kaiten_field(types, name, target_type): an expression of target_type for
    raw column `name`; a typed null when the column does not exist.
    target_type is one of: timestamptz, date, jsonb, bigint, bigint[],
    integer, numeric, double precision, boolean, text.
#}
{% macro kaiten_field(types, name, target_type) %}
    {%- set source_type = types.get(name | lower) -%}
    {%- set column = adapter.quote(name | lower) -%}
    {%- if source_type is none -%}
        {{- 'null::' ~ target_type -}}
    {%- elif target_type == 'timestamptz' -%}
        {{- kaiten_to_timestamptz(column, source_type) -}}
    {%- elif target_type == 'date' -%}
        {{- kaiten_to_date(column, source_type) -}}
    {%- elif target_type == 'jsonb' -%}
        {{- kaiten_to_jsonb(column, source_type) -}}
    {%- elif target_type == 'bigint[]' -%}
        {{- kaiten_to_bigint_array(column, source_type) -}}
    {%- elif source_type in ('jsonb', 'json') -%}
        {#- a scalar kept as JSON by the loader: take its text form -#}
        {{- '(' ~ column ~ ' #>> ' ~ "'{}'" ~ ')::' ~ target_type -}}
    {%- elif source_type == target_type -%}
        {{- column -}}
    {%- else -%}
        {{- column ~ '::' ~ target_type -}}
    {%- endif -%}
{% endmacro %}


{% macro kaiten_to_timestamptz(column, source_type) %}
    {%- if source_type == 'timestamp with time zone' -%}
        {{- column -}}
    {%- elif source_type == 'timestamp without time zone' -%}
        {#- the loader writes UTC wall-clock time into timestamp columns -#}
        {{- '(' ~ column ~ " at time zone 'UTC')" -}}
    {%- elif source_type == 'date' -%}
        {{- '(' ~ column ~ "::timestamp at time zone 'UTC')" -}}
    {%- elif source_type in ('jsonb', 'json') -%}
        {{- "nullif(" ~ column ~ " #>> '{}', '')::timestamptz" -}}
    {%- else -%}
        {#- ISO 8601 text carries its own offset ("Z"), so the session time zone does not matter -#}
        {{- "nullif(" ~ column ~ "::text, '')::timestamptz" -}}
    {%- endif -%}
{% endmacro %}


{% macro kaiten_to_date(column, source_type) %}
    {%- if source_type in ('timestamp with time zone', 'timestamp without time zone') -%}
        {{- '(' ~ kaiten_to_timestamptz(column, source_type) ~ " at time zone 'UTC')::date" -}}
    {%- elif source_type == 'date' -%}
        {{- column -}}
    {%- elif source_type in ('jsonb', 'json') -%}
        {{- "nullif(left(" ~ column ~ " #>> '{}', 10), '')::date" -}}
    {%- else -%}
        {#- "YYYY-MM-DD" or a UTC "...Z" timestamp: the first ten characters are the UTC day -#}
        {{- "nullif(left(" ~ column ~ "::text, 10), '')::date" -}}
    {%- endif -%}
{% endmacro %}


{% macro kaiten_to_jsonb(column, source_type) %}
    {%- if source_type == 'jsonb' -%}
        {{- column -}}
    {%- elif source_type in ('json', 'text') or source_type.startswith('character varying') -%}
        {{- column ~ '::jsonb' -}}
    {%- elif source_type == 'array' -%}
        {#- an array type this macro's caller could not name -#}
        {{- 'to_jsonb(' ~ column ~ ')' -}}
    {%- else -%}
        {#- postgres arrays and scalars -#}
        {{- 'to_jsonb(' ~ column ~ ')' -}}
    {%- endif -%}
{% endmacro %}


{% macro kaiten_to_bigint_array(column, source_type) %}
    {%- if source_type.endswith('[]') or source_type == 'array' -%}
        {{- column ~ '::bigint[]' -}}
    {%- elif source_type in ('jsonb', 'json', 'text', 'character varying') -%}
        {{- 'array(select jsonb_array_elements_text(' ~ kaiten_to_jsonb(column, source_type) ~ ')::bigint)' -}}
    {%- else -%}
        {{- 'array[' ~ column ~ ']::bigint[]' -}}
    {%- endif -%}
{% endmacro %}


{#
    Rows the loader soft-deleted (full-table syncs mark rows that disappeared
    from the API with _sdc_deleted_at) are gone for every model downstream.
#}
{% macro kaiten_live_rows(types) %}
    {%- if '_sdc_deleted_at' in types -%}
        {{- '_sdc_deleted_at is null' -}}
    {%- else -%}
        {{- 'true' -}}
    {%- endif -%}
{% endmacro %}


{#
    Newest copy first when a key appears more than once (a loader without
    upserts, or a re-run that appended): ordering by the loader's own columns.
#}
{% macro kaiten_newest_first(types) %}
    {%- set keys = [] -%}
    {%- for name in ['_sdc_batched_at', '_sdc_received_at', '_sdc_sequence'] -%}
        {%- if name in types -%}{%- do keys.append(name ~ ' desc nulls last') -%}{%- endif -%}
    {%- endfor -%}
    {{- keys | join(', ') if keys else 'true' -}}
{% endmacro %}


{# A bookmark value as a timestamp when it looks like one, else null (never an error). #}
{% macro kaiten_try_timestamptz(expression) -%}
    case
        when {{ expression }} ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}'
            then ({{ expression }})::timestamptz
    end
{%- endmacro %}


{# The relation when it exists in the database, else none. #}
{% macro kaiten_existing_relation(relation) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(
        database=relation.database,
        schema=relation.schema,
        identifier=relation.identifier,
    )) }}
{% endmacro %}


{#
    The raw rows of a table, one per key (the newest load) and without the
    rows the loader soft-deleted. target-postgres upserts into tables with a
    primary key on `id`, and then the database already guarantees one row
    per key: the view stays a plain filter that lets the marts' conditions
    reach the table. Without such a key (an append-only loader), the newest
    copy of each id wins.
#}
{% macro kaiten_deduplicated(relation, types) -%}
    {%- if kaiten_has_unique_id(relation) -%}
        select *
        from {{ relation }}
        where {{ kaiten_live_rows(types) }}
    {%- else -%}
        select distinct on (id) *
        from {{ relation }}
        where {{ kaiten_live_rows(types) }}
        order by id, {{ kaiten_newest_first(types) }}
    {%- endif -%}
{%- endmacro %}


{# Whether the table has a unique index on `id` alone (its primary key, usually). #}
{% macro kaiten_has_unique_id(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from pg_index as indexes"
        ~ " inner join pg_attribute as attributes"
        ~ " on attributes.attrelid = indexes.indrelid and attributes.attnum = indexes.indkey[0]"
        ~ " where indexes.indrelid = to_regclass('" ~ adapter.quote(relation.schema) ~ "."
        ~ adapter.quote(relation.identifier) ~ "')"
        ~ " and indexes.indisunique and indexes.indnkeyatts = 1 and attributes.attname = 'id'"
    ) -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}
