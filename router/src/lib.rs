//! corecast-router
