{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'columns') }}") }}
{%- set raw = source('kaiten', 'columns') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as column_id,
    {{ kaiten_field(types, 'uid', 'text') }} as column_uid,
    {{ kaiten_field(types, 'board_id', 'bigint') }} as board_id,
    -- set only on subcolumns: the column they belong to
    {{ kaiten_field(types, 'column_id', 'bigint') }} as parent_column_id,
    {{ kaiten_field(types, 'title', 'text') }} as title,
    {{ kaiten_field(types, 'sort_order', 'double precision') }} as sort_order,
    -- 1 queue, 2 in progress, 3 done
    {{ kaiten_field(types, 'type', 'integer') }} as column_type,
    nullif({{ kaiten_field(types, 'wip_limit', 'integer') }}, 0) as wip_limit,
    {{ kaiten_field(types, 'wip_limit_type', 'integer') }} as wip_limit_type,
    {{ kaiten_field(types, 'col_count', 'integer') }} as col_count,
    nullif({{ kaiten_field(types, 'archive_after_days', 'integer') }}, -1) as archive_after_days,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, 'rules', 'jsonb') }} as rules,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
