{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'cards') }}") }}
{%- set raw = source('kaiten', 'cards') -%}
{%- set types = kaiten_source_columns(raw) -%}

-- No CTEs here: PostgreSQL never flattens a view that has a WITH clause
-- into the query using it, so every column below would be computed for every
-- row even when a mart needs a handful of cards.
select
    {{ kaiten_field(types, 'id', 'bigint') }} as card_id,
    {{ kaiten_field(types, 'uid', 'text') }} as card_uid,
    {{ kaiten_field(types, 'title', 'text') }} as title,
    {{ kaiten_field(types, 'description', 'text') }} as description,
    {{ kaiten_field(types, 'key', 'text') }} as card_key,
    {{ kaiten_field(types, 'external_id', 'text') }} as external_id,
    {{ kaiten_field(types, 'version', 'bigint') }} as version,

    -- where the card is; a card has no space id of its own (path_data holds it)
    {{ kaiten_field(types, 'board_id', 'bigint') }} as board_id,
    {{ kaiten_field(types, 'column_id', 'bigint') }} as column_id,
    {{ kaiten_field(types, 'lane_id', 'bigint') }} as lane_id,
    coalesce(
        ({{ kaiten_field(types, 'path_data', 'jsonb') }} #>> '{space,id}')::bigint,
        {{ kaiten_field(types, 'space_id', 'bigint') }}
    ) as space_id,
    {{ kaiten_field(types, 'path_data', 'jsonb') }} #>> '{space,title}' as space_title,
    ({{ kaiten_field(types, 'column', 'jsonb') }} #>> '{parent,id}')::bigint as parent_column_id,
    {{ kaiten_field(types, 'sort_order', 'double precision') }} as sort_order,
    {{ kaiten_field(types, 'sprint_id', 'bigint') }} as sprint_id,

    -- status: state 1 queued / 2 in progress / 3 done; condition 1 live / 2 archived
    {{ kaiten_field(types, 'state', 'integer') }} as state,
    {{ kaiten_field(types, 'condition', 'integer') }} as condition,
    (
        coalesce({{ kaiten_field(types, 'archived', 'boolean') }}, false)
        or coalesce({{ kaiten_field(types, 'condition', 'integer') }} = 2, false)
    ) as is_archived,
    coalesce({{ kaiten_field(types, 'asap', 'boolean') }}, false) as is_asap,
    coalesce({{ kaiten_field(types, 'blocked', 'boolean') }}, false) as is_blocked,
    coalesce({{ kaiten_field(types, 'public', 'boolean') }}, false) as is_public,

    -- people and classification
    {{ kaiten_field(types, 'owner_id', 'bigint') }} as owner_id,
    {{ kaiten_field(types, 'owner', 'jsonb') }} ->> 'full_name' as owner_name,
    {{ kaiten_field(types, 'updater_id', 'bigint') }} as updater_id,
    {{ kaiten_field(types, 'type_id', 'bigint') }} as card_type_id,
    {{ kaiten_field(types, 'type', 'jsonb') }} ->> 'name' as card_type_name,
    array(
        select (card_members.member ->> 'id')::bigint
        from
            jsonb_array_elements(
                coalesce({{ kaiten_field(types, 'members', 'jsonb') }}, '[]'::jsonb)
            ) as card_members (member)
        order by (card_members.member ->> 'id')::bigint
    ) as member_ids,
    array(
        select (card_members.member ->> 'id')::bigint
        from
            jsonb_array_elements(
                coalesce({{ kaiten_field(types, 'members', 'jsonb') }}, '[]'::jsonb)
            ) as card_members (member)
        where (card_members.member ->> 'type') = '2'
        order by (card_members.member ->> 'id')::bigint
    ) as responsible_ids,
    coalesce(
        {{ kaiten_field(types, 'tag_ids', 'bigint[]') }},
        array(
            select (card_tags.tag ->> 'id')::bigint
            from jsonb_array_elements(
                coalesce({{ kaiten_field(types, 'tags', 'jsonb') }}, '[]'::jsonb)
            ) as card_tags (tag)
        )
    ) as tag_ids,
    array(
        select card_tags.tag ->> 'name'
        from
            jsonb_array_elements(
                coalesce({{ kaiten_field(types, 'tags', 'jsonb') }}, '[]'::jsonb)
            ) as card_tags (tag)
        order by card_tags.tag ->> 'name'
    ) as tag_names,
    {{ kaiten_field(types, 'parents_ids', 'bigint[]') }} as parent_card_ids,
    {{ kaiten_field(types, 'children_ids', 'bigint[]') }} as child_card_ids,

    -- size and time
    {{ kaiten_field(types, 'size', 'numeric') }} as size,
    {{ kaiten_field(types, 'size_unit', 'text') }} as size_unit,
    {{ kaiten_field(types, 'size_text', 'text') }} as size_text,
    {{ kaiten_field(types, 'due_date', 'timestamptz') }} as due_at,
    coalesce({{ kaiten_field(types, 'due_date_time_present', 'boolean') }}, false) as is_due_time_set,
    {{ kaiten_field(types, 'planned_start', 'date') }} as planned_start_date,
    {{ kaiten_field(types, 'planned_end', 'date') }} as planned_end_date,
    {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
    {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
    {{ kaiten_field(types, 'last_moved_at', 'timestamptz') }} as last_moved_at,
    {{ kaiten_field(types, 'column_changed_at', 'timestamptz') }} as column_changed_at,
    {{ kaiten_field(types, 'lane_changed_at', 'timestamptz') }} as lane_changed_at,
    {{ kaiten_field(types, 'first_moved_to_in_progress_at', 'timestamptz') }} as first_moved_to_in_progress_at,
    {{ kaiten_field(types, 'last_moved_to_done_at', 'timestamptz') }} as last_moved_to_done_at,
    {{ kaiten_field(types, 'completed_at', 'timestamptz') }} as completed_at,
    {{ kaiten_field(types, 'completed_on_time', 'boolean') }} as is_completed_on_time,
    {{ kaiten_field(types, 'comments_total', 'integer') }} as comments_total,
    {{ kaiten_field(types, 'comment_last_added_at', 'timestamptz') }} as comment_last_added_at,
    {{ kaiten_field(types, 'time_spent_sum', 'integer') }} as time_spent_minutes,
    {{ kaiten_field(types, 'time_blocked_sum', 'integer') }} as time_blocked_minutes,

    -- raw JSON, kept whole for what staging does not unpack
    {{ kaiten_field(types, 'properties', 'jsonb') }} as properties,
    {{ kaiten_field(types, 'members', 'jsonb') }} as members,
    {{ kaiten_field(types, 'tags', 'jsonb') }} as tags,
    {{ kaiten_field(types, 'checklists', 'jsonb') }} as checklists,
    {{ kaiten_field(types, 'files', 'jsonb') }} as files,
    {{ kaiten_field(types, 'path_data', 'jsonb') }} as path_data,

    {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at
from (
    {{ kaiten_deduplicated(raw, types) }}
) as source
