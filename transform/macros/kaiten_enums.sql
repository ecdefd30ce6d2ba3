{# Kaiten's numeric codes as the words the site shows; one place to change them. #}

{% macro kaiten_column_type_name(column) -%}
    case {{ column }}
        when 1 then 'queue'
        when 2 then 'in_progress'
        when 3 then 'done'
    end
{%- endmacro %}


{% macro kaiten_card_status(state, is_archived) -%}
    case
        when {{ is_archived }} then 'archived'
        when {{ state }} = 1 then 'queued'
        when {{ state }} = 2 then 'in_progress'
        when {{ state }} = 3 then 'done'
    end
{%- endmacro %}
