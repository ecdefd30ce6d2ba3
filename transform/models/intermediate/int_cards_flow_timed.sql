-- When each card started and was finished, from its location history.
-- started: the first time the card entered an in-progress or done column
--   while on the board (a card moved straight from the queue to done starts
--   when it is done).
-- done: the card's latest entry is in a done column; it has been done since
--   the first entry of that trailing run of done-column entries, so moving
--   back out of done and in again restarts the clock, while archiving a done
--   card (an entry in the same column) does not.
with history as (

    select * from {{ ref('stg_kaiten__card_location_history') }}

),

columns as (

    select * from {{ ref('stg_kaiten__columns') }}

),

segments as (

    {{ kaiten_card_location_segments('history', 'columns') }}
),

marked as (

    select
        card_id,
        entry_number,
        changed_at,
        column_type,
        is_on_board,
        coalesce(
            max(entry_number) filter (where column_type is distinct from 3)
                over (partition by card_id),
            0
        ) as last_not_done_entry
    from segments

),

final as (

    select
        card_id,
        min(changed_at) as first_located_at,
        min(changed_at) filter (where column_type in (2, 3) and is_on_board) as started_at,
        min(changed_at) filter (where entry_number > last_not_done_entry) as done_at
    from marked
    group by card_id

)

select * from final
