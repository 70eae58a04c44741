//! corecast-core
