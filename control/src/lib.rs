//! corecast control plane (auth and calls services).
