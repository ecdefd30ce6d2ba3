{#- Durations and counts can't be negative; nulls are allowed (not_null says otherwise). -#}
{% test non_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
