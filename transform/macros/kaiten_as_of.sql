{#
    The instant a build compares "now" against (overdue flags): the start of
    the dbt invocation, so every model of one build agrees on it.
#}
{% macro kaiten_as_of() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}
