-- Card counts per board and space (each card counts once, in the space its
-- path names): open = on the board and not done, done = on the board in a
-- done column, archived = off the board.
with cards as (

    select * from {{ ref('stg_kaiten__cards') }}

),

boards as (

    select * from {{ ref('stg_kaiten__boards') }}

),

final as (

    select
        cards.board_id,
        coalesce(cards.space_id, boards.space_id) as space_id,
        count(*) filter (where not cards.is_archived and cards.state is distinct from 3) as open_card_count,
        count(*) filter (where not cards.is_archived and cards.state = 3) as done_card_count,
        count(*) filter (where cards.is_archived) as archived_card_count,
        count(*) as card_count
    from cards
    left join boards
        on cards.board_id = boards.board_id
    group by cards.board_id, coalesce(cards.space_id, boards.space_id)

)

select * from final
