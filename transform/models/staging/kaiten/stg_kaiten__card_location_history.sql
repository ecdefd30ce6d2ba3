{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'card_location_history') }}") }}
{%- set raw = source('kaiten', 'card_location_history') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'text') }} as location_history_id,
    {{ kaiten_field(types, 'card_id', 'bigint') }} as card_id,
    {{ kaiten_field(types, 'board_id', 'bigint') }} as board_id,
    {{ kaiten_field(types, 'column_id', 'bigint') }} as column_id,
    {{ kaiten_field(types, 'subcolumn_id', 'bigint') }} as subcolumn_id,
    {{ kaiten_field(types, 'lane_id', 'bigint') }} as lane_id,
    {{ kaiten_field(types, 'sprint_id', 'bigint') }} as sprint_id,
    {{ kaiten_field(types, 'author_id', 'bigint') }} as author_id,
    -- 1 live, 2 archived: archiving is recorded as a movement too
    {{ kaiten_field(types, 'condition', 'integer') }} as condition,
    {{ kaiten_field(types, 'changed', 'timestamptz') }} as changed_at,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
