package dev.cellar.api.spi;

import dev.cellar.api.CellarException;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * Backend discovery and selection: an explicit request (the {@code --backend} flag) wins, then the
 * {@code CELLAR_BACKEND} environment variable, then the lowest priority whose probe is ok.
 */
public final class Backends {
    public static final String ENV = "CELLAR_BACKEND";

    private Backends() {
    }

    /** Providers on the class loader, by id; a duplicate id fails naming both classes. */
    public static Map<String, BackendProvider> discover(ClassLoader loader) {
        Map<String, BackendProvider> byId = new LinkedHashMap<>();
        for (BackendProvider p : ServiceLoader.load(BackendProvider.class, loader)) {
            BackendProvider old = byId.putIfAbsent(p.id(), p);
            if (old != null) {
                throw new CellarException("two backends have the id '" + p.id() + "': " + old.getClass().getName()
                        + " and " + p.getClass().getName() + "; remove one of them from the class path");
            }
        }
        return byId;
    }

    /**
     * Picks a provider. {@code requested} (the flag) may be null; then {@code env} (the environment variable's value)
     * may be null; then the best available one.
     */
    public static BackendProvider select(Map<String, BackendProvider> providers, String requested, String env) {
        String want = requested != null && !requested.isBlank() ? requested.trim()
                : env != null && !env.isBlank() ? env.trim() : null;
        if (want != null) {
            BackendProvider p = providers.get(want);
            if (p == null) {
                throw new CellarException("unknown backend '" + want + "'" + (requested == null ? " (from " + ENV + ")" : "")
                        + "; known backends: " + String.join(", ", providers.keySet()));
            }
            Availability a = safeProbe(p);
            if (!a.ok()) {
                throw new CellarException("backend '" + want + "' is not available: " + a.reason());
            }
            return p;
        }
        List<BackendProvider> sorted = new ArrayList<>(providers.values());
        sorted.sort(Comparator.comparingInt(BackendProvider::priority));
        List<String> why = new ArrayList<>();
        for (BackendProvider p : sorted) {
            Availability a = safeProbe(p);
            if (a.ok()) {
                return p;
            }
            why.add(p.id() + ": " + a.reason());
        }
        throw new CellarException("no backend is available" + (why.isEmpty() ? " (none on the class path)" : ": " + String.join("; ", why)));
    }

    /** Shorthand: discover on this class's loader and select with the flag and {@code CELLAR_BACKEND}. */
    public static Backend open(String requested, BackendConfig config) {
        return select(discover(Backends.class.getClassLoader()), requested, System.getenv(ENV)).open(config);
    }

    /** A probe that never throws, even for a badly written provider. */
    public static Availability safeProbe(BackendProvider p) {
        try {
            Availability a = p.probe();
            return a == null ? Availability.unavailable("probe returned nothing") : a;
        } catch (Throwable t) {
            return Availability.unavailable("probe failed: " + t);
        }
    }
}
