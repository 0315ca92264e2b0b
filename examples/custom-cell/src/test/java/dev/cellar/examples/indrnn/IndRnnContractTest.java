package dev.cellar.examples.indrnn;

import dev.cellar.api.spi.CellProvider;
import dev.cellar.cells.kit.CellContract;
import org.junit.jupiter.api.Test;

import java.util.ServiceLoader;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** IndRNN passes the same cell contract as the built-in cells. */
class IndRnnContractTest extends CellContract {
    @Override
    protected CellProvider provider() {
        return new IndRnn();
    }

    @Test
    void isDiscoverableThroughItsServicesFile() {
        assertTrue(ServiceLoader.load(CellProvider.class).stream().anyMatch(p -> p.type() == IndRnn.class),
                "META-INF/services/dev.cellar.api.spi.CellProvider must list dev.cellar.examples.indrnn.IndRnn");
    }
}
