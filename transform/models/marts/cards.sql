{{
    config(
        materialized='incremental',
        unique_key='card_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=[
            "delete from {{ this }} as built
            where not exists (
                select from {{ ref('stg_kaiten__cards') }} as live
                where live.card_id = built.card_id
            )",
        ],
    )
}}
{#-
    Incremental: a sync changes a few cards, so only those are rebuilt (the
    card's row or its location history loaded since the last build, or a due
    date passed since then); a change to anything every row shows (names,
    structure, this model's SQL) rebuilds all rows; deleted cards are removed
    by the post-hook.
-#}
{%- set dimensions_fingerprint = kaiten_dimensions_fingerprint([
    (ref('stg_kaiten__boards'), ['board_id', 'title', 'space_id']),
    (ref('stg_kaiten__spaces'), ['space_id', 'space_uid', 'title', 'parent_entity_uid']),
    (ref('stg_kaiten__columns'), ['column_id', 'board_id', 'parent_column_id', 'title', 'column_type', 'sort_order']),
    (ref('stg_kaiten__lanes'), ['lane_id', 'title']),
    (ref('stg_kaiten__users'), ['user_id', 'full_name']),
    (ref('stg_kaiten__card_types'), ['card_type_id', 'name']),
    (ref('stg_kaiten__tags'), ['tag_id', 'name']),
    (ref('stg_kaiten__custom_properties'), ['custom_property_id', 'name', 'property_type', 'is_multi_select', 'select_values']),
]) -%}

-- One row per live or archived card (deleted cards are gone), with
-- everything the site shows resolved to names, and its flow times.
with all_cards as (

    select * from {{ ref('stg_kaiten__cards') }}

),

all_history as (

    select * from {{ ref('stg_kaiten__card_location_history') }}

),

-- computed once: as an expression in a filter it would be hashed again for every row
fingerprint as (

    select {{ dimensions_fingerprint }} as dimensions_fingerprint

),

cards as (

    select *
    from all_cards
    {% if is_incremental() -%}
        where
            loaded_at > (select max(built.loaded_at) from {{ this }} as built)
            or card_id in (
                select changed_history.card_id
                from all_history as changed_history
                where changed_history.loaded_at > (select max(built.history_loaded_at) from {{ this }} as built)
            )
            -- the overdue flag of these flipped since the last build
            or (
                due_at > (select max(built.built_at) from {{ this }} as built)
                and due_at <= {{ kaiten_as_of() }}
            )
            or (select max(built.dimensions_fingerprint) from {{ this }} as built)
            is distinct from (select fingerprint.dimensions_fingerprint from fingerprint)
    {%- endif %}

),

history as (

    select all_history.*
    from all_history
    inner join cards
        on all_history.card_id = cards.card_id

),

boards as (

    select * from {{ ref('stg_kaiten__boards') }}

),

spaces as (

    select * from {{ ref('stg_kaiten__spaces') }}

),

space_paths as (

    select * from {{ ref('int_spaces_nested') }}

),

columns as (

    select * from {{ ref('stg_kaiten__columns') }}

),

ordered_columns as (

    select * from {{ ref('int_columns_ordered') }}

),

lanes as (

    select * from {{ ref('stg_kaiten__lanes') }}

),

users as (

    select * from {{ ref('stg_kaiten__users') }}

),

card_types as (

    select * from {{ ref('stg_kaiten__card_types') }}

),

tags as (

    select * from {{ ref('stg_kaiten__tags') }}

),

custom_properties as (

    select * from {{ ref('stg_kaiten__custom_properties') }}

),

flow_times as (

    {{ kaiten_card_flow_times('history', 'columns') }}

),

history_loads as (

    select
        card_id,
        max(loaded_at) as history_loaded_at
    from history
    group by card_id

),

property_values as (

    {{ kaiten_card_property_values('cards', 'custom_properties') }}

),

joined as (

    select
        cards.card_id,
        cards.card_uid,
        cards.card_key,
        cards.title,
        cards.description,
        coalesce(cards.space_id, boards.space_id) as space_id,
        coalesce(spaces.title, cards.space_title) as space_title,
        space_paths.space_path,
        cards.board_id,
        boards.title as board_title,
        -- a card in a subcolumn reports its top-level column and the subcolumn
        coalesce(ordered_columns.top_column_id, cards.parent_column_id, cards.column_id) as column_id,
        coalesce(ordered_columns.parent_column_title, ordered_columns.title) as column_title,
        case
            when coalesce(ordered_columns.is_subcolumn, cards.parent_column_id is not null) then cards.column_id
        end as subcolumn_id,
        case when ordered_columns.is_subcolumn then ordered_columns.title end as subcolumn_title,
        cards.lane_id,
        lanes.title as lane_title,
        cards.state,
        {{ kaiten_card_status('cards.state', 'cards.is_archived') }} as status,
        cards.is_archived,
        cards.state = 3 as is_done,
        cards.is_blocked,
        cards.is_asap,
        cards.owner_id,
        coalesce(users.full_name, cards.owner_name) as owner_name,
        cards.card_type_id,
        coalesce(card_types.name, cards.card_type_name) as card_type_name,
        cards.tag_ids,
        -- current tag names; the name embedded in the card when the tag list lacks it
        array(
            select coalesce(tags.name, embedded.tag ->> 'name') as tag_name
            from unnest(cards.tag_ids) as card_tag_ids (tag_id)
            left join tags
                on card_tag_ids.tag_id = tags.tag_id
            left join jsonb_array_elements(coalesce(cards.tags, '[]'::jsonb)) as embedded (tag)
                on card_tag_ids.tag_id = (embedded.tag ->> 'id')::bigint
            order by tag_name
        ) as tag_names,
        cards.member_ids,
        cards.responsible_ids,
        coalesce(property_values.property_values, '{}'::jsonb) as custom_properties,
        cards.size,
        cards.size_text,
        cards.due_at,
        cards.is_due_time_set,
        cards.created_at,
        cards.updated_at,
        coalesce(flow_times.started_at, cards.first_moved_to_in_progress_at) as started_at,
        case
            when cards.state = 3
                then coalesce(flow_times.done_at, cards.last_moved_to_done_at, cards.completed_at)
        end as done_at,
        cards.column_changed_at,
        cards.comments_total,
        cards.version,
        cards.sort_order,
        cards.properties,
        cards.loaded_at,
        history_loads.history_loaded_at
    from cards
    left join boards
        on cards.board_id = boards.board_id
    left join spaces
        on coalesce(cards.space_id, boards.space_id) = spaces.space_id
    left join space_paths
        on coalesce(cards.space_id, boards.space_id) = space_paths.space_id
    left join ordered_columns
        on cards.column_id = ordered_columns.column_id
    left join lanes
        on cards.lane_id = lanes.lane_id
    left join users
        on cards.owner_id = users.user_id
    left join card_types
        on cards.card_type_id = card_types.card_type_id
    left join flow_times
        on cards.card_id = flow_times.card_id
    left join history_loads
        on cards.card_id = history_loads.card_id
    left join property_values
        on cards.card_id = property_values.card_id

),

final as (

    select
        *,
        coalesce(
            due_at < {{ kaiten_as_of() }}
            and not is_done
            and not is_archived,
            false
        ) as is_overdue,
        (extract(epoch from done_at - created_at) / 3600)::double precision as lead_time_hours,
        (extract(epoch from done_at - started_at) / 3600)::double precision as cycle_time_hours,
        -- bookkeeping of the incremental build
        {{ kaiten_as_of() }} as built_at,
        (select fingerprint.dimensions_fingerprint from fingerprint) as dimensions_fingerprint
    from joined

)

select * from final
