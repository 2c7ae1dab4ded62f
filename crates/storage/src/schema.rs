//! Diesel's view of the tables created by `migrations/{postgres,sqlite}`.

#![allow(missing_docs)]

diesel::table! {
    orders (id) {
        id -> Text,
        created_at -> Timestamp,
        market -> Text,
        location_type -> Text,
        location -> Text,
        hour_start_utc -> Timestamp,
        side -> Text,
        qty_milli_mwh -> BigInt,
        limit_price_cents -> BigInt,
        status -> Text,
        approved_at -> Nullable<Timestamp>,
        approval_rt_interval_start_utc -> Nullable<Timestamp>,
        approval_rt_lmp_cents -> Nullable<BigInt>,
        approval_rt_source -> Nullable<Text>,
        reject_reason -> Nullable<Text>,
        parked_reason -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
    }
}

diesel::table! {
    order_events (id) {
        id -> BigInt,
        order_id -> Text,
        from_status -> Nullable<Text>,
        to_status -> Text,
        at -> Timestamp,
        actor -> Text,
        details -> Text,
    }
}

diesel::joinable!(order_events -> orders (order_id));
diesel::allow_tables_to_appear_in_same_query!(orders, order_events);
