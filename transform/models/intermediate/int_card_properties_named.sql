-- Card custom property values keyed by property name instead of Kaiten's
-- "id_<property id>", with select options resolved to their text when the
-- options are known (a single select becomes one value, a multi-select a list).
with cards as (

    select
        card_id,
        properties
    from {{ ref('stg_kaiten__cards') }}
    where jsonb_typeof(properties) = 'object'

),

custom_properties as (

    select * from {{ ref('stg_kaiten__custom_properties') }}

),

select_options as (

    select
        custom_properties.custom_property_id,
        select_option.value ->> 'id' as option_id,
        select_option.value ->> 'value' as option_text
    from custom_properties
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(custom_properties.select_values) = 'array'
                then custom_properties.select_values
            else '[]'::jsonb
        end
    ) as select_option

),

entries as (

    select
        cards.card_id,
        entry.key as property_key,
        entry.value as raw_value,
        case when entry.key ~ '^id_[0-9]+$' then substr(entry.key, 4)::bigint end as custom_property_id
    from cards
    cross join lateral jsonb_each(cards.properties) as entry

),

resolved as (

    select
        entries.card_id,
        coalesce(custom_properties.name, entries.property_key) as property_name,
        case
            when
                custom_properties.property_type = 'select'
                and jsonb_typeof(entries.raw_value) = 'array'
                then (
                    select
                        case
                            when not custom_properties.is_multi_select and count(*) = 1
                                then (array_agg(coalesce(to_jsonb(select_options.option_text), element.value)))[1]
                            else
                                coalesce(
                                    jsonb_agg(
                                        coalesce(to_jsonb(select_options.option_text), element.value)
                                        order by element.position
                                    ),
                                    '[]'::jsonb
                                )
                        end
                    from jsonb_array_elements(entries.raw_value) with ordinality as element (value, position)
                    left join select_options
                        on
                            select_options.custom_property_id = custom_properties.custom_property_id
                            and select_options.option_id = element.value #>> '{}'
                )
            else entries.raw_value
        end as property_value
    from entries
    left join custom_properties
        on entries.custom_property_id = custom_properties.custom_property_id

),

final as (

    select
        card_id,
        jsonb_object_agg(property_name, property_value) as property_values
    from resolved
    group by card_id

)

select * from final
