package dev.cellar.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Backends;
import dev.cellar.autodiff.Tape;
import jakarta.inject.Inject;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = "Check every backend: PASS/FAIL with the reason, a numeric self-check against cpu-reference, and which one is chosen.")
final class DoctorCommand implements Callable<Integer> {
    @Option(names = "--json", description = "print one JSON object")
    boolean json;
    @Option(names = "--backend", description = "the backend a command would get with this flag")
    String backend;

    private final Services services;
    private final Registry registry;
    private final Io io;

    @Inject
    DoctorCommand(Services services, Registry registry, Io io) {
        this.services = services;
        this.registry = registry;
        this.io = io;
    }

    /** tanh(A @ B) on a small fixed problem, as floats. */
    static float[] selfCheck(Backend b) {
        try (Tape t = Tape.on(b)) {
            double[] a = new double[37 * 29];
            double[] c = new double[29 * 41];
            for (int i = 0; i < a.length; i++) {
                a[i] = Math.sin(i * 0.37);
            }
            for (int i = 0; i < c.length; i++) {
                c[i] = Math.cos(i * 0.11) * 0.3;
            }
            Tensor y = t.tanh(t.matmul(t.constant(a, Shape.of(37, 29)), t.constant(c, Shape.of(29, 41))));
            return t.softmax(y, -1).toFloats();
        }
    }

    @Override
    public Integer call() throws Exception {
        List<BackendProvider> all = new ArrayList<>(services.backends().values());
        all.sort(Comparator.comparingInt(BackendProvider::priority));
        float[] expected;
        try (Backend ref = services.backends().get("cpu-reference").open(BackendConfig.defaults())) {
            expected = selfCheck(ref);
        }
        List<Map<String, Object>> rows = new ArrayList<>();
        for (BackendProvider p : all) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("id", p.id());
            r.put("priority", p.priority());
            r.put("jar", registry.backends().get(p.id()).origin());
            Availability a = Backends.safeProbe(p);
            String status;
            String detail = a.reason();
            List<Map<String, Object>> devices = new ArrayList<>();
            if (!a.ok()) {
                status = "FAIL";
            } else {
                String[] check = check(p, null, expected);
                status = check[0];
                detail = check[1];
                for (String d : p.devices()) {
                    String index = d.substring(0, d.indexOf(':'));
                    String[] dc = check(p, index, expected);
                    Map<String, Object> dr = new LinkedHashMap<>();
                    dr.put("device", d);
                    dr.put("status", dc[0]);
                    dr.put("detail", dc[0].equals("PASS") ? "self-check matches cpu-reference" : dc[1]);
                    devices.add(dr);
                }
            }
            r.put("status", status);
            r.put("detail", detail);
            if (!devices.isEmpty()) {
                r.put("devices", devices);
            }
            rows.add(r);
        }
        String chosen;
        try {
            chosen = services.select(backend).id();
        } catch (RuntimeException e) {
            chosen = "none (" + e.getMessage() + ")";
        }
        if (json) {
            io.out().println(new ObjectMapper().writeValueAsString(Map.of("backends", rows, "chosen", chosen)));
        } else {
            for (Map<String, Object> r : rows) {
                io.out().printf("%-4s %-14s priority %-3s %s%n", r.get("status"), r.get("id"), r.get("priority"), r.get("detail"));
                @SuppressWarnings("unchecked")
                List<Map<String, Object>> devices = (List<Map<String, Object>>) r.getOrDefault("devices", List.of());
                for (Map<String, Object> d : devices) {
                    io.out().printf("       %-4s device %s%s%n", d.get("status"), d.get("device"),
                            d.get("status").equals("PASS") ? "" : " - " + d.get("detail"));
                }
            }
            io.out().println("chosen: " + chosen + (System.getenv(Backends.ENV) != null ? " (" + Backends.ENV + "=" + System.getenv(Backends.ENV) + ")" : ""));
        }
        String id = chosenId(chosen);
        return rows.stream().anyMatch(r -> r.get("id").equals(id) && r.get("status").equals("PASS")) ? 0 : 1;
    }

    /** {status, detail} of opening {@code p} on {@code device} and running the self-check. */
    private static String[] check(BackendProvider p, String device, float[] expected) {
        try (Backend b = p.open(new BackendConfig(0, device, Map.of()))) {
            float[] got = selfCheck(b);
            double worst = 0;
            for (int i = 0; i < got.length; i++) {
                worst = Math.max(worst, Math.abs(got[i] - expected[i]));
            }
            boolean ok = worst <= 1e-5;
            return new String[] {ok ? "PASS" : "FAIL",
                    b.description() + b.replicas().map(r -> ", trains data-parallel over " + r.kernels().size() + " replicas").orElse("")
                            + (ok ? "" : "; self-check differs from cpu-reference by " + worst)};
        } catch (RuntimeException | LinkageError e) {
            return new String[] {"FAIL", "open failed: " + e.getMessage()};
        }
    }

    private static String chosenId(String chosen) {
        int sp = chosen.indexOf(' ');
        return sp < 0 ? chosen : chosen.substring(0, sp);
    }
}
