//! Host-side bindings for the Spin interfaces in `host/wit` (WASI and wasi:http come from
//! wasmtime-wasi and wasmtime-wasi-http). Every import is trappable so a bad resource handle
//! traps the guest instead of being reported as a store error, and async so a backend that
//! waits on the network (Redis) does not hold a runtime thread while it waits.

wasmtime::component::bindgen!({
    path: "wit",
    world: "oms:host/platform",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "wasi:keyvalue/store.bucket": crate::key_value::OpenStore,
        "wasi:keyvalue/atomics.cas": crate::key_value::Cas,
        "fermyon:spin/redis.connection": crate::queue::RedisConnection,
    },
});

/// The export a queue-triggered component implements.
pub mod redis_trigger {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "oms:host/redis-trigger",
        exports: { default: async },
    });
}

/// The export a cron-triggered component implements (`handle-cron-event`, as Spin's cron
/// trigger plugin).
pub mod cron_trigger {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "oms:host/cron-trigger",
        exports: { default: async },
    });
}
