-- Boards with the space they belong to (its readable path), every space they
-- are placed in, and their card counts.
with boards as (

    select * from {{ ref('stg_kaiten__boards') }}

),

spaces as (

    select * from {{ ref('stg_kaiten__spaces') }}

),

space_paths as (

    select * from {{ ref('int_spaces_nested') }}

),

placements as (

    select
        board_id,
        array_agg(space_id order by is_primary desc, space_id asc) as space_ids
    from {{ ref('int_boards_placed') }}
    group by board_id

),

card_counts as (

    select
        board_id,
        sum(open_card_count) as open_card_count,
        sum(done_card_count) as done_card_count,
        sum(archived_card_count) as archived_card_count,
        sum(card_count) as card_count
    from {{ ref('int_cards_counted') }}
    group by board_id

),

structure as (

    select
        board_id,
        count(*) filter (where not is_subcolumn) as column_count,
        count(*) filter (where is_subcolumn) as subcolumn_count
    from {{ ref('int_columns_ordered') }}
    group by board_id

),

lanes as (

    select
        board_id,
        count(*) filter (where condition = 1) as lane_count
    from {{ ref('stg_kaiten__lanes') }}
    group by board_id

),

final as (

    select
        boards.board_id,
        boards.board_uid,
        boards.title,
        boards.description,
        boards.space_id,
        spaces.title as space_title,
        space_paths.space_path,
        coalesce(placements.space_ids, array[]::bigint []) as space_ids,
        boards.board_type,
        boards.sort_order,
        coalesce(structure.column_count, 0) as column_count,
        coalesce(structure.subcolumn_count, 0) as subcolumn_count,
        coalesce(lanes.lane_count, 0) as lane_count,
        coalesce(card_counts.open_card_count, 0)::bigint as open_card_count,
        coalesce(card_counts.done_card_count, 0)::bigint as done_card_count,
        coalesce(card_counts.archived_card_count, 0)::bigint as archived_card_count,
        coalesce(card_counts.card_count, 0)::bigint as card_count,
        boards.created_at,
        boards.updated_at
    from boards
    left join spaces
        on boards.space_id = spaces.space_id
    left join space_paths
        on boards.space_id = space_paths.space_id
    left join placements
        on boards.board_id = placements.board_id
    left join card_counts
        on boards.board_id = card_counts.board_id
    left join structure
        on boards.board_id = structure.board_id
    left join lanes
        on boards.board_id = lanes.board_id

)

select * from final
