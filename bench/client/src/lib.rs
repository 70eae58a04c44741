//! corecast-client
