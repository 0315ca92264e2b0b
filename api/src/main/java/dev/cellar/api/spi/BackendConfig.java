package dev.cellar.api.spi;

import java.util.Map;

/**
 * What a backend is opened with. {@code threads} 0 means the backend's default (all cores); {@code device} is a
 * device index or name substring, or null for the default device.
 */
public record BackendConfig(int threads, String device, Map<String, String> options) {
    public BackendConfig {
        options = Map.copyOf(options);
    }

    public static BackendConfig defaults() {
        return new BackendConfig(0, null, Map.of());
    }
}
