-- Columns and subcolumns of every board in display order: top-level columns
-- by sort_order, each followed by its subcolumns by their sort_order.
with columns as (

    select * from {{ ref('stg_kaiten__columns') }}

),

top_level as (

    select
        column_id,
        row_number() over (
            partition by board_id order by sort_order, column_id
        ) as column_position
    from columns
    where parent_column_id is null

),

positioned as (

    select
        columns.*,
        parents.title as parent_column_title,
        coalesce(parents.column_type, columns.column_type) as top_column_type,
        coalesce(parent_positions.column_position, own_positions.column_position) as column_position,
        case
            when columns.parent_column_id is null then 0
            else row_number() over (
                    partition by columns.parent_column_id
                    order by columns.sort_order, columns.column_id
                )
        end as subcolumn_position
    from columns
    left join columns as parents
        on columns.parent_column_id = parents.column_id
    left join top_level as own_positions
        on columns.column_id = own_positions.column_id
    left join top_level as parent_positions
        on columns.parent_column_id = parent_positions.column_id

),

final as (

    select
        column_id,
        board_id,
        parent_column_id,
        parent_column_title,
        coalesce(parent_column_id, column_id) as top_column_id,
        parent_column_id is not null as is_subcolumn,
        title,
        column_type,
        {{ kaiten_column_type_name('column_type') }} as column_type_name,
        top_column_type,
        wip_limit,
        wip_limit_type,
        column_position,
        subcolumn_position,
        row_number() over (
            partition by board_id
            order by column_position, subcolumn_position, column_id
        ) as display_order,
        sort_order,
        created_at,
        updated_at
    from positioned

)

select * from final
