{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'tags') }}") }}
{%- set raw = source('kaiten', 'tags') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as tag_id,
    {{ kaiten_field(types, 'uid', 'text') }} as tag_uid,
    {{ kaiten_field(types, 'name', 'text') }} as name,
    {{ kaiten_field(types, 'color', 'text') }} as color,
    {{ kaiten_field(types, 'company_id', 'bigint') }} as company_id,
    coalesce({{ kaiten_field(types, 'archived', 'boolean') }}, false) as is_archived,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
