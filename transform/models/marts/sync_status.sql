{#-
    The state table belongs to the pipeline's state backend and appears with
    the first `meltano run`; before that (or when the loader runs without
    Meltano) every stream is listed with no bookmark instead of failing.
-#}
{%- set state_table = kaiten_existing_relation(source('kaiten', 'sync_metadata')) -%}
{%- set streams = [
    'boards', 'card_comments', 'card_location_history', 'card_types', 'cards',
    'columns', 'custom_properties', 'lanes', 'spaces', 'tags', 'users',
] -%}

-- Per stream: the last bookmark Meltano saved and when, plus when the loader
-- last wrote rows to its raw table.
with streams (stream_name, last_loaded_at) as (

    {% for stream in streams -%}
        {%- set raw = source('kaiten', stream) -%}
        {%- set types = kaiten_source_columns(raw) -%}
        select
            '{{ stream }}'::text,
            (select max({{ kaiten_field(types, '_sdc_batched_at', 'timestamptz') }}) from {{ raw }})
        {% if not loop.last %}union all
        {% endif %}
    {%- endfor %}

),

state_rows as (

    {% if state_table is not none -%}
        select
            state_id,
            completed_state,
            updated_at
        from {{ state_table }}
    {%- else -%}
        select
            null::text as state_id,
            null::jsonb as completed_state,
            null::timestamptz as updated_at
        where false
    {%- endif %}

),

bookmarks as (

    select
        state_rows.state_id,
        state_rows.updated_at,
        bookmark.key as stream_name,
        bookmark.value as bookmark
    from state_rows
    cross join lateral jsonb_each(
        case
            when jsonb_typeof(state_rows.completed_state -> 'singer_state' -> 'bookmarks') = 'object'
                then state_rows.completed_state -> 'singer_state' -> 'bookmarks'
            else '{}'::jsonb
        end
    ) as bookmark

),

bookmark_values as (

    -- a stream keeps its bookmark on itself or, when partitioned, per partition
    select
        bookmarks.state_id,
        bookmarks.updated_at,
        bookmarks.stream_name,
        coalesce(
            bookmarks.bookmark ->> 'replication_key', partition_bookmark.value ->> 'replication_key'
        ) as replication_key,
        coalesce(
            partition_bookmark.value ->> 'replication_key_value',
            bookmarks.bookmark ->> 'replication_key_value'
        ) as replication_key_value,
        partition_bookmark.value is not null as is_partition
    from bookmarks
    left join lateral jsonb_array_elements(
        case
            when jsonb_typeof(bookmarks.bookmark -> 'partitions') = 'array'
                then bookmarks.bookmark -> 'partitions'
            else '[]'::jsonb
        end
    ) as partition_bookmark on true

),

per_state as (

    select
        state_id,
        stream_name,
        max(updated_at) as bookmark_written_at,
        max(replication_key) as replication_key,
        -- the newest and oldest partition bookmarks (equal when not partitioned)
        max(replication_key_value) as bookmark_value,
        min(replication_key_value) as oldest_partition_bookmark_value,
        count(*) filter (where is_partition) as partition_count
    from bookmark_values
    group by state_id, stream_name

),

latest as (

    -- the most recently written state that mentions the stream
    select distinct on (stream_name) *
    from per_state
    order by stream_name asc, bookmark_written_at desc, state_id asc

),

final as (

    select
        coalesce(streams.stream_name, latest.stream_name) as stream_name,
        latest.state_id,
        latest.replication_key,
        latest.bookmark_value,
        {{ kaiten_try_timestamptz('latest.bookmark_value') }} as bookmark_at,
        latest.oldest_partition_bookmark_value,
        coalesce(latest.partition_count, 0) as partition_count,
        latest.bookmark_written_at,
        streams.last_loaded_at
    from streams
    full outer join latest
        on streams.stream_name = latest.stream_name

)

select * from final
