{#
    Each card's custom property values keyed by property name instead of
    Kaiten's "id_<property id>", with select options resolved to their text
    when the options are known (a single select becomes one value, a
    multi-select a list). One row per card of `cards` that has properties.
#}
{% macro kaiten_card_property_values(cards, custom_properties) -%}
    select
        entries.card_id,
        jsonb_object_agg(
            coalesce(properties.name, entries.property_key),
            case
                when
                    properties.property_type = 'select'
                    and jsonb_typeof(entries.raw_value) = 'array'
                    then (
                        select
                            case
                                when not properties.is_multi_select and count(*) = 1
                                    then (array_agg(coalesce(to_jsonb(options.option_text), element.value)))[1]
                                else
                                    coalesce(
                                        jsonb_agg(
                                            coalesce(to_jsonb(options.option_text), element.value)
                                            order by element.position
                                        ),
                                        '[]'::jsonb
                                    )
                            end
                        from jsonb_array_elements(entries.raw_value) with ordinality as element (value, position)
                        left join (
                            select
                                option_properties.custom_property_id,
                                select_option.value ->> 'id' as option_id,
                                select_option.value ->> 'value' as option_text
                            from {{ custom_properties }} as option_properties
                            cross join lateral jsonb_array_elements(
                                case
                                    when jsonb_typeof(option_properties.select_values) = 'array'
                                        then option_properties.select_values
                                    else '[]'::jsonb
                                end
                            ) as select_option
                        ) as options
                            on
                                properties.custom_property_id = options.custom_property_id
                                and element.value #>> '{}' = options.option_id
                    )
                else entries.raw_value
            end
        ) as property_values
    from (
        select
            property_cards.card_id,
            entry.key as property_key,
            entry.value as raw_value,
            case when entry.key ~ '^id_[0-9]+$' then substr(entry.key, 4)::bigint end as custom_property_id
        from {{ cards }} as property_cards
        cross join lateral jsonb_each(property_cards.properties) as entry
        where jsonb_typeof(property_cards.properties) = 'object'
    ) as entries
    left join {{ custom_properties }} as properties
        on entries.custom_property_id = properties.custom_property_id
    group by entries.card_id
{%- endmacro %}
