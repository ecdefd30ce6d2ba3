-- Every location-history entry of a card in order, as a segment that lasts
-- until the card's next entry, grouped into visits: consecutive entries in
-- the same top-level column while the card is on the board. A move between
-- subcolumns or lanes stays in the same visit; archiving ends the visit and
-- unarchiving starts a new one.
with history as (

    select * from {{ ref('stg_kaiten__card_location_history') }}

),

columns as (

    select * from {{ ref('stg_kaiten__columns') }}

),

ordered as (

    select
        history.location_history_id,
        history.card_id,
        history.board_id,
        history.column_id,
        history.subcolumn_id,
        history.lane_id,
        history.condition,
        history.changed_at,
        columns.column_type,
        row_number() over by_card as entry_number,
        lead(history.changed_at) over by_card as next_changed_at,
        lag(history.column_id) over by_card as previous_column_id,
        lag(history.condition) over by_card as previous_condition
    from history
    left join columns
        on history.column_id = columns.column_id
    window by_card as (
        partition by history.card_id
        -- ids are strings of digits: compare by length first so "10" follows "9"
        order by history.changed_at, length(history.location_history_id), history.location_history_id
    )

),

flagged as (

    select
        *,
        coalesce(condition, 1) <> 2 as is_on_board,
        coalesce(
            coalesce(condition, 1) <> 2
            and (
                previous_column_id is null
                or previous_column_id <> column_id
                or coalesce(previous_condition, 1) = 2
            ),
            false
        ) as starts_visit,
        next_changed_at is null as is_last_entry
    from ordered

),

final as (

    select
        *,
        sum(starts_visit::int) over (
            partition by card_id order by entry_number
        ) as visit_number,
        case
            when is_on_board then extract(epoch from next_changed_at - changed_at)
        end as segment_seconds
    from flagged

)

select * from final
