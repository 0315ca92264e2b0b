package dev.cellar.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Backend selection; CELLAR_BACKEND cannot be set in-process, so its value is passed in. */
class ServicesTest {
    private final Registry registry = Registry.discover(null);
    private final Services services = new Services(registry.cellProviders(), registry.backendProviders());

    @Test
    void unknownBackendFromTheEnvironmentIsAUsageErrorNamingTheVariable() {
        UsageException e = assertThrows(UsageException.class, () -> services.select(null, "tpu"));
        assertEquals("unknown backend 'tpu' (from CELLAR_BACKEND); known backends: " + String.join(", ", registry.backends().keySet()),
                e.getMessage());
    }

    @Test
    void theFlagWinsOverTheEnvironment() {
        assertEquals("cpu-reference", services.select("cpu-reference", "tpu").id());
        assertEquals("cpu-reference", services.select(null, "cpu-reference").id());
    }

    @Test
    void unknownBackendFlag() {
        UsageException e = assertThrows(UsageException.class, () -> services.select("tpu", null));
        assertTrue(e.getMessage().startsWith("unknown backend 'tpu'; known backends: "), e.getMessage());
    }

    @Test
    void withNeitherTheBestAvailableIsChosen() {
        assertTrue(registry.backends().containsKey(services.select(null, null).id()));
    }
}
