{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'card_types') }}") }}
{%- set raw = source('kaiten', 'card_types') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as card_type_id,
    {{ kaiten_field(types, 'uid', 'text') }} as card_type_uid,
    {{ kaiten_field(types, 'name', 'text') }} as name,
    {{ kaiten_field(types, 'letter', 'text') }} as letter,
    {{ kaiten_field(types, 'color', 'text') }} as color,
    coalesce({{ kaiten_field(types, 'archived', 'boolean') }}, false) as is_archived,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, 'properties', 'jsonb') }} as properties,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
