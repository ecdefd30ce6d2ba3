{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'lanes') }}") }}
{%- set raw = source('kaiten', 'lanes') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as lane_id,
    {{ kaiten_field(types, 'uid', 'text') }} as lane_uid,
    {{ kaiten_field(types, 'board_id', 'bigint') }} as board_id,
    {{ kaiten_field(types, 'title', 'text') }} as title,
    {{ kaiten_field(types, 'sort_order', 'double precision') }} as sort_order,
    {{ kaiten_field(types, 'row_count', 'integer') }} as row_count,
    nullif({{ kaiten_field(types, 'wip_limit', 'integer') }}, 0) as wip_limit,
    -- 1 live, 2 archived, 3 deleted
    {{ kaiten_field(types, 'condition', 'integer') }} as condition,
    {{ kaiten_field(types, 'default_card_type_id', 'bigint') }} as default_card_type_id,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
