-- Each space with its chain of ancestors resolved into a readable path
-- ("Разработка / Backend"); spaces nest through parent_entity_uid.
with recursive spaces as (

    select * from {{ ref('stg_kaiten__spaces') }}

),

nested (space_id, space_uid, parent_space_id, space_path, depth, ancestor_ids) as (

    select
        space_id,
        space_uid,
        null::bigint,
        title,
        0,
        array[space_id]
    from spaces
    where
        parent_entity_uid is null
        -- a parent the token cannot see makes the space a root
        or parent_entity_uid not in (select space_uid from spaces)

    union all

    select
        child.space_id,
        child.space_uid,
        parent.space_id,
        parent.space_path || ' / ' || child.title,
        parent.depth + 1,
        parent.ancestor_ids || child.space_id
    from nested as parent
    inner join spaces as child
        on child.parent_entity_uid = parent.space_uid
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
