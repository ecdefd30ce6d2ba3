{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'users') }}") }}
{%- set raw = source('kaiten', 'users') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as user_id,
    {{ kaiten_field(types, 'uid', 'text') }} as user_uid,
    {{ kaiten_field(types, 'full_name', 'text') }} as full_name,
    {{ kaiten_field(types, 'username', 'text') }} as username,
    {{ kaiten_field(types, 'email', 'text') }} as email,
    {{ kaiten_field(types, 'role', 'integer') }} as role,
    coalesce({{ kaiten_field(types, 'activated', 'boolean') }}, false) as is_activated,
    coalesce({{ kaiten_field(types, 'virtual', 'boolean') }}, false) as is_virtual,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
