//! The retry and throttle policy shared by every HTTP client.
