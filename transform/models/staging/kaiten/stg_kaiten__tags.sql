{#- Fresh planner statistics right after a load: without them the marts' joins
    over a just-loaded table get plans several times slower. -#}
{{ config(pre_hook="analyze {{ source('kaiten', 'tags') }}") }}
{%- set raw = source('kaiten', 'tags') -%}
{%- set types = kaiten_source_columns(raw) -%}

with source as (

    select distinct on (id) *
    from {{ raw }}
    where {{ kaiten_live_rows(types) }}
    order by id, {{ kaiten_newest_first(types) }}

),

renamed as (

    select
        {{ kaiten_field(types, 'id', 'bigint') }} as tag_id,
        {{ kaiten_field(types, 'uid', 'text') }} as tag_uid,
        {{ kaiten_field(types, 'name', 'text') }} as name,
        {{ kaiten_field(types, 'color', 'text') }} as color,
        {{ kaiten_field(types, 'company_id', 'bigint') }} as company_id,
        coalesce({{ kaiten_field(types, 'archived', 'boolean') }}, false) as is_archived,
        {{ kaiten_field(types, 'created', 'timestamptz') }} as created_at,
        {{ kaiten_field(types, 'updated', 'timestamptz') }} as updated_at,
        {{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }} as loaded_at

    from source

)

select * from renamed
