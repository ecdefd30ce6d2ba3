{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'card_comments') }}") }}
{%- set raw = source('kaiten', 'card_comments') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as comment_id,
    {{ kaiten_field(types, 'uid', 'text') }} as comment_uid,
    {{ kaiten_field(types, 'card_id', 'bigint') }} as card_id,
    {{ kaiten_field(types, 'author_id', 'bigint') }} as author_id,
    {{ kaiten_field(types, 'text', 'text') }} as body,
    -- 1 markdown, 2 html
    {{ kaiten_field(types, 'type', 'integer') }} as comment_type,
    coalesce({{ kaiten_field(types, 'edited', 'boolean') }}, false) as is_edited,
    coalesce({{ kaiten_field(types, 'internal', 'boolean') }}, false) as is_internal,
    coalesce({{ kaiten_field(types, 'deleted', 'boolean') }}, false) as is_deleted,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
