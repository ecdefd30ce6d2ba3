-- Spaces with their readable path, the boards placed in them and the cards
-- that belong to them (each card counts in its own space only).
with spaces as (

    select * from {{ ref('stg_kaiten__spaces') }}

),

space_paths as (

    select * from {{ ref('int_spaces_nested') }}

),

placements as (

    select
        space_id,
        count(*) as board_count
    from {{ ref('int_boards_placed') }}
    group by space_id

),

card_counts as (

    select
        space_id,
        sum(open_card_count) as open_card_count,
        sum(done_card_count) as done_card_count,
        sum(archived_card_count) as archived_card_count,
        sum(card_count) as card_count
    from {{ ref('int_cards_counted') }}
    group by space_id

),

final as (

    select
        spaces.space_id,
        spaces.space_uid,
        spaces.title,
        space_paths.parent_space_id,
        space_paths.space_path,
        space_paths.depth,
        spaces.is_archived,
        spaces.access,
        spaces.sort_order,
        coalesce(placements.board_count, 0) as board_count,
        coalesce(card_counts.open_card_count, 0)::bigint as open_card_count,
        coalesce(card_counts.done_card_count, 0)::bigint as done_card_count,
        coalesce(card_counts.archived_card_count, 0)::bigint as archived_card_count,
        coalesce(card_counts.card_count, 0)::bigint as card_count,
        spaces.created_at,
        spaces.updated_at
    from spaces
    left join space_paths
        on spaces.space_id = space_paths.space_id
    left join placements
        on spaces.space_id = placements.space_id
    left join card_counts
        on spaces.space_id = card_counts.space_id

)

select * from final
