{#
    Every location-history entry of a card in order, as a segment that lasts
    until the card's next entry, grouped into visits: consecutive entries in
    the same top-level column while the card is on the board. A move between
    subcolumns or lanes stays in the same visit; archiving (an entry with
    condition 2) ends the visit and unarchiving starts a new one.

    Shared by int_cards_flow_timed and card_column_durations as a query over
    their own inputs, so each of them can be unit-tested from raw history rows.
#}
{% macro kaiten_card_location_segments(history, columns) %}
    select
        ordered.*,
        coalesce(ordered.condition, 1) <> 2 as is_on_board,
        ordered.next_changed_at is null as is_last_entry,
        sum(
            case
                when
                    coalesce(ordered.condition, 1) <> 2
                    and (
                        ordered.previous_column_id is null
                        or ordered.previous_column_id <> ordered.column_id
                        or coalesce(ordered.previous_condition, 1) = 2
                    )
                    then 1
                else 0
            end
        ) over (partition by ordered.card_id order by ordered.entry_number) as visit_number,
        case
            when coalesce(ordered.condition, 1) <> 2
                then extract(epoch from ordered.next_changed_at - ordered.changed_at)
        end as segment_seconds
    from (
        select
            history.location_history_id,
            history.card_id,
            history.board_id,
            history.column_id,
            history.subcolumn_id,
            history.condition,
            history.changed_at,
            history.loaded_at,
            location_columns.column_type,
            row_number() over by_card as entry_number,
            lead(history.changed_at) over by_card as next_changed_at,
            lag(history.column_id) over by_card as previous_column_id,
            lag(history.condition) over by_card as previous_condition
        from {{ history }} as history
        left join {{ columns }} as location_columns
            on history.column_id = location_columns.column_id
        window by_card as (
            partition by history.card_id
            -- ids are strings of digits: compare by length first so "10" follows "9"
            order by
                history.changed_at,
                length(history.location_history_id),
                history.location_history_id
        )
    ) as ordered
{% endmacro %}


{#
    When each card in `history` started and was finished (one row per card).
    started: the first time the card entered an in-progress or done column
      while on the board (a card moved straight from the queue to done starts
      when it is done).
    done: the card's latest entry is in a done column; it has been done since
      the first entry of that trailing run of done-column entries, so moving
      back out of done and in again restarts the clock, while archiving a done
      card (an entry in the same column) does not.
    Built on kaiten_card_location_segments (defined above: one file, so
    sqlfluff's templater sees both), over the caller's CTEs, so the cards
    mart runs it on the history of just the cards it rebuilds.
#}
{% macro kaiten_card_flow_times(history, columns) -%}
    select
        card_id,
        min(changed_at) as first_located_at,
        min(changed_at) filter (where column_type in (2, 3) and is_on_board) as started_at,
        min(changed_at) filter (where entry_number > last_not_done_entry) as done_at
    from (
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
        from ({{ kaiten_card_location_segments(history, columns) }}) as segments
    ) as marked
    group by card_id
{%- endmacro %}
