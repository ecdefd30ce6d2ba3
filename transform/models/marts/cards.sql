-- One row per live or archived card (deleted cards are gone), with
-- everything the site shows resolved to names.
with cards as (

    select * from {{ ref('stg_kaiten__cards') }}

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

flow_times as (

    select * from {{ ref('int_cards_flow_timed') }}

),

property_values as (

    select * from {{ ref('int_card_properties_named') }}

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
        coalesce(columns.top_column_id, cards.parent_column_id, cards.column_id) as column_id,
        coalesce(columns.parent_column_title, columns.title) as column_title,
        case
            when coalesce(columns.is_subcolumn, cards.parent_column_id is not null) then cards.column_id
        end as subcolumn_id,
        case when columns.is_subcolumn then columns.title end as subcolumn_title,
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
        cards.loaded_at
    from cards
    left join boards
        on cards.board_id = boards.board_id
    left join spaces
        on coalesce(cards.space_id, boards.space_id) = spaces.space_id
    left join space_paths
        on coalesce(cards.space_id, boards.space_id) = space_paths.space_id
    left join columns
        on cards.column_id = columns.column_id
    left join lanes
        on cards.lane_id = lanes.lane_id
    left join users
        on cards.owner_id = users.user_id
    left join card_types
        on cards.card_type_id = card_types.card_type_id
    left join flow_times
        on cards.card_id = flow_times.card_id
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
        (extract(epoch from done_at - started_at) / 3600)::double precision as cycle_time_hours
    from joined

)

select * from final
