{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'spaces') }}") }}
{%- set raw = source('kaiten', 'spaces') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as space_id,
    {{ kaiten_field(types, 'uid', 'text') }} as space_uid,
    {{ kaiten_field(types, 'title', 'text') }} as title,
    {{ kaiten_field(types, 'parent_entity_uid', 'text') }} as parent_entity_uid,
    {{ kaiten_field(types, 'path', 'text') }} as space_path_ids,
    {{ kaiten_field(types, 'entity_type', 'text') }} as entity_type,
    {{ kaiten_field(types, 'access', 'text') }} as access,
    {{ kaiten_field(types, 'sort_order', 'double precision') }} as sort_order,
    {{ kaiten_field(types, 'company_id', 'bigint') }} as company_id,
    {{ kaiten_field(types, 'external_id', 'text') }} as external_id,
    coalesce({{ kaiten_field(types, 'archived', 'boolean') }}, false) as is_archived,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, 'settings', 'jsonb') }} as settings,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
