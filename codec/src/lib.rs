//! corecast codec pool.
