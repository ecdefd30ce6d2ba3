-- Columns and subcolumns of every board in display order, with their type,
-- WIP limit and current load. Cards in a subcolumn count towards the
-- subcolumn and its column; archived cards are off the board and count nowhere.
with columns as (

    select * from {{ ref('int_columns_ordered') }}

),

boards as (

    select * from {{ ref('stg_kaiten__boards') }}

),

live_cards as (

    select
        card_id,
        column_id,
        coalesce(size, 0) as size
    from {{ ref('stg_kaiten__cards') }}
    where not is_archived

),

loads as (

    -- a card counts for the column it sits in and, from a subcolumn, for the parent too
    select
        columns.column_id,
        count(live_cards.card_id) as card_count,
        coalesce(sum(live_cards.size), 0) as card_size_total
    from columns
    left join columns as leaves
        on columns.column_id = leaves.column_id or columns.column_id = leaves.parent_column_id
    left join live_cards
        on leaves.column_id = live_cards.column_id
    group by columns.column_id

),

final as (

    select
        columns.column_id,
        columns.board_id,
        boards.title as board_title,
        columns.parent_column_id,
        columns.parent_column_title,
        columns.is_subcolumn,
        columns.title,
        columns.column_type_name as column_type,
        columns.display_order,
        columns.column_position,
        columns.subcolumn_position,
        columns.wip_limit,
        -- Kaiten limits either the number of cards (1) or their total size (2)
        case columns.wip_limit_type when 2 then 'size' else 'cards' end as wip_limit_kind,
        loads.card_count,
        loads.card_size_total,
        coalesce(
            columns.wip_limit is not null
            and case columns.wip_limit_type
                when 2 then loads.card_size_total > columns.wip_limit
                else loads.card_count > columns.wip_limit
            end,
            false
        ) as is_over_wip_limit,
        columns.created_at,
        columns.updated_at
    from columns
    left join boards
        on columns.board_id = boards.board_id
    left join loads
        on columns.column_id = loads.column_id

)

select * from final
