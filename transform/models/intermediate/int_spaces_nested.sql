-- Each space with its chain of ancestors resolved into a readable path
-- ("Разработка / Backend"); spaces nest through parent_entity_uid.
with recursive spaces as (

    select * from {{ ref('stg_kaiten__spaces') }}

),

roots as (

    -- a parent the token cannot see makes the space a root
    select children.*
    from spaces as children
    left join spaces as parents
        on children.parent_entity_uid = parents.space_uid
    where parents.space_id is null

),

nested (space_id, space_uid, parent_space_id, space_path, depth, ancestor_ids) as (

    select
        space_id,
        space_uid,
        null::bigint as parent_space_id,
        title as space_path,
        0 as depth,
        array[space_id] as ancestor_ids
    from roots

    union all

    select
        child.space_id,
        child.space_uid,
        parent.space_id as parent_space_id,
        parent.space_path || ' / ' || child.title as space_path,
        parent.depth + 1 as depth,
        parent.ancestor_ids || child.space_id as ancestor_ids
    from nested as parent
    inner join spaces as child
        on parent.space_uid = child.parent_entity_uid
    -- a cycle in bad data must not loop forever
    where not child.space_id = any(parent.ancestor_ids)

),

final as (

    select
        space_id,
        parent_space_id,
        space_path,
        depth
    from nested

)

select * from final
