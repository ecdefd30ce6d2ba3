{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'boards') }}") }}
{%- set raw = source('kaiten', 'boards') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as board_id,
    {{ kaiten_field(types, 'uid', 'text') }} as board_uid,
    {{ kaiten_field(types, 'title', 'text') }} as title,
    {{ kaiten_field(types, 'description', 'text') }} as description,
    {{ kaiten_field(types, 'space_id', 'bigint') }} as space_id,
    {{ kaiten_field(types, 'space_ids', 'bigint[]') }} as space_ids,
    {{ kaiten_field(types, 'type', 'integer') }} as board_type,
    {{ kaiten_field(types, 'sort_order', 'double precision') }} as sort_order,
    {{ kaiten_field(types, 'default_card_type_id', 'bigint') }} as default_card_type_id,
    {{ kaiten_field(types, 'external_id', 'text') }} as external_id,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, 'card_properties', 'jsonb') }} as card_properties,
    {{ kaiten_field(types, 'cell_wip_limits', 'jsonb') }} as cell_wip_limits,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
