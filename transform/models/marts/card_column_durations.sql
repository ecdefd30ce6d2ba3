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
    Incremental by card: a card whose history was loaded since the last build
    gets all its rows replaced; a change to the columns' names or types (or to
    this model's SQL) rebuilds every row; deleted cards are removed by the
    post-hook.
-#}
{%- set dimensions_fingerprint = kaiten_dimensions_fingerprint([
    (ref('stg_kaiten__columns'), ['column_id', 'board_id', 'title', 'column_type']),
]) -%}

-- How long each card spent in each column: the basis of flow metrics.
-- Finished visits are summed in time_in_column_seconds; the visit the card is
-- still in is open, so its length depends on when you ask: add
-- now() - current_visit_started_at for it. Archived time counts nowhere.
with all_history as (

    select * from {{ ref('stg_kaiten__card_location_history') }}

),

-- computed once: as an expression in a filter it would be hashed again for every row
fingerprint as (

    select {{ dimensions_fingerprint }} as dimensions_fingerprint

),

history as (

    select *
    from all_history
    {% if is_incremental() -%}
        where
            card_id in (
                select changed_history.card_id
                from all_history as changed_history
                where changed_history.loaded_at > (select max(built.history_loaded_at) from {{ this }} as built)
            )
            or (select max(built.dimensions_fingerprint) from {{ this }} as built)
            is distinct from (select fingerprint.dimensions_fingerprint from fingerprint)
    {%- endif %}

),

columns as (

    select * from {{ ref('stg_kaiten__columns') }}

),

cards as (

    select card_id from {{ ref('stg_kaiten__cards') }}

),

sequenced as (

    {{ kaiten_card_location_segments('history', 'columns') }}
),

current_visits as (

    select
        card_id,
        visit_number as current_visit_number
    from sequenced
    where is_last_entry and is_on_board

),

per_card_column as (

    select
        sequenced.card_id,
        sequenced.column_id,
        count(distinct sequenced.visit_number) filter (where sequenced.is_on_board) as visit_count,
        coalesce(
            sum(sequenced.segment_seconds) filter (
                where sequenced.visit_number is distinct from current_visits.current_visit_number
            ),
            0
        ) as time_in_column_seconds,
        min(sequenced.changed_at) filter (where sequenced.is_on_board) as first_entered_at,
        max(sequenced.next_changed_at) filter (
            where
            sequenced.is_on_board
            and sequenced.visit_number is distinct from current_visits.current_visit_number
        ) as last_left_at,
        min(sequenced.changed_at) filter (
            where sequenced.visit_number = current_visits.current_visit_number
        ) as current_visit_started_at,
        max(sequenced.loaded_at) as history_loaded_at
    from sequenced
    inner join cards
        on sequenced.card_id = cards.card_id
    left join current_visits
        on sequenced.card_id = current_visits.card_id
    group by sequenced.card_id, sequenced.column_id
    having count(*) filter (where sequenced.is_on_board) > 0

),

final as (

    select
        per_card_column.card_id,
        per_card_column.column_id,
        columns.board_id,
        columns.title as column_title,
        {{ kaiten_column_type_name('columns.column_type') }} as column_type,
        per_card_column.visit_count,
        per_card_column.time_in_column_seconds::numeric(16, 3) as time_in_column_seconds,
        (per_card_column.time_in_column_seconds / 3600)::double precision as time_in_column_hours,
        per_card_column.current_visit_started_at is not null as is_current,
        per_card_column.current_visit_started_at,
        per_card_column.first_entered_at,
        per_card_column.last_left_at,
        -- bookkeeping of the incremental build
        per_card_column.history_loaded_at,
        (select fingerprint.dimensions_fingerprint from fingerprint) as dimensions_fingerprint
    from per_card_column
    left join columns
        on per_card_column.column_id = columns.column_id

)

select * from final
