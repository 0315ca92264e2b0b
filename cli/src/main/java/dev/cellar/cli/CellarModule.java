package dev.cellar.cli;

import com.google.inject.AbstractModule;
import com.google.inject.multibindings.MapBinder;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.CellProvider;

/**
 * The composition root's bindings: discovered cells and backends as map bindings keyed by id, and the registry they
 * came from. Side-effect free: discovery happened before, in {@link Registry#discover}.
 */
final class CellarModule extends AbstractModule {
    private final Registry registry;

    CellarModule(Registry registry) {
        this.registry = registry;
    }

    @Override
    protected void configure() {
        bind(Registry.class).toInstance(registry);
        MapBinder<String, CellProvider> cells = MapBinder.newMapBinder(binder(), String.class, CellProvider.class);
        registry.cells().forEach((id, f) -> cells.addBinding(id).toInstance(f.provider()));
        MapBinder<String, BackendProvider> backends = MapBinder.newMapBinder(binder(), String.class, BackendProvider.class);
        registry.backends().forEach((id, f) -> backends.addBinding(id).toInstance(f.provider()));
    }
}
