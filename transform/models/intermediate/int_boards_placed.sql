-- Which spaces each board is placed in: a board can sit in several spaces.
-- Its own space_id is the primary one.
with boards as (

    select * from {{ ref('stg_kaiten__boards') }}

),

placements as (

    select
        board_id,
        space_id,
        true as is_primary
    from boards
    where space_id is not null

    union

    select
        boards.board_id,
        placed.space_id,
        false as is_primary
    from boards
    cross join lateral unnest(coalesce(boards.space_ids, array[]::bigint [])) as placed (space_id)
    where placed.space_id is distinct from boards.space_id

),

final as (

    select
        board_id,
        space_id,
        is_primary
    from placements

)

select * from final
