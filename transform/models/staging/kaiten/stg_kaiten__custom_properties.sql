{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'custom_properties') }}") }}
{%- set raw = source('kaiten', 'custom_properties') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as custom_property_id,
    {{ kaiten_field(types, 'uid', 'text') }} as custom_property_uid,
    {{ kaiten_field(types, 'name', 'text') }} as name,
    {{ kaiten_field(types, 'type', 'text') }} as property_type,
    {{ kaiten_field(types, 'condition', 'text') }} as condition,
    coalesce({{ kaiten_field(types, 'multi_select', 'boolean') }}, false) as is_multi_select,
    {{ kaiten_field(types, 'values_type', 'text') }} as values_type,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    -- select options when the API included them (include_values)
    {{ kaiten_field(types, 'values', 'jsonb') }} as select_values,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
