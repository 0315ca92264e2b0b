package dev.cellar.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.cellar.api.DType;
import dev.cellar.api.Shape;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format: 8-byte little-endian header length N, N bytes of JSON header mapping tensor names to
 * {@code {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the data section) plus a string map
 * {@code __metadata__}, then the raw little-endian data. Writes are atomic; reads validate everything.
 */
public final class SafeTensors {
    /** Headers larger than this are refused before they are read (a corrupt length cannot exhaust memory). */
    static final long MAX_HEADER = 64L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private SafeTensors() {
    }

    /** One tensor: name, dtype, shape and its little-endian bytes. */
    public record Entry(String name, DType dtype, Shape shape, byte[] data) {
        public static Entry of(String name, Shape shape, float[] v) {
            ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(v);
            return new Entry(name, DType.F32, shape, b.array());
        }

        public static Entry of(String name, Shape shape, double[] v) {
            ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
            b.asDoubleBuffer().put(v);
            return new Entry(name, DType.F64, shape, b.array());
        }

        public double[] doubles() {
            ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
            double[] out = new double[shape.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = switch (dtype) {
                    case F32 -> b.getFloat(i * 4);
                    case F64 -> b.getDouble(i * 8);
                    case I32 -> b.getInt(i * 4);
                };
            }
            return out;
        }
    }

    /** A read file: metadata and tensors by name, in file order. */
    public record Contents(Map<String, String> metadata, Map<String, Entry> tensors) {
    }

    public static void write(Path path, Map<String, String> metadata, List<Entry> entries) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        header.set("__metadata__", JSON.valueToTree(metadata));
        long off = 0;
        for (Entry e : entries) {
            ObjectNode t = header.putObject(e.name());
            t.put("dtype", e.dtype().name());
            var shape = t.putArray("shape");
            for (int d : e.shape().dims()) {
                shape.add(d);
            }
            t.putArray("data_offsets").add(off).add(off + e.data().length);
            off += e.data().length;
        }
        byte[] h = JSON.writeValueAsBytes(header);
        int pad = (8 - h.length % 8) % 8;
        byte[] hp = new byte[h.length + pad];
        System.arraycopy(h, 0, hp, 0, h.length);
        java.util.Arrays.fill(hp, h.length, hp.length, (byte) ' ');
        Path dir = path.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + path.getFileName() + ".", ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hp.length).flip();
                writeFully(ch, len);
                writeFully(ch, ByteBuffer.wrap(hp));
                for (Entry e : entries) {
                    writeFully(ch, ByteBuffer.wrap(e.data()));
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    public static Contents read(Path path) {
        byte[] all;
        try {
            if (!Files.isRegularFile(path)) {
                throw new CheckpointException(path + ": checkpoint not found");
            }
            all = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new CheckpointException(path + ": cannot read checkpoint (" + e.getMessage() + ")");
        }
        return parse(path.toString(), all);
    }

    /** Validates and splits a whole file held in memory. Every problem is a CheckpointException. */
    public static Contents parse(String name, byte[] all) {
        String bad = name + ": not a valid safetensors checkpoint: ";
        if (all.length < 8) {
            throw new CheckpointException(bad + "only " + all.length + " bytes (truncated?)");
        }
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (n <= 1 || n > all.length - 8 || n > MAX_HEADER) {
            throw new CheckpointException(bad + "header length " + n + " does not fit the file of " + all.length + " bytes (truncated?)");
        }
        JsonNode header;
        try {
            header = JSON.readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new CheckpointException(bad + "header is not JSON (" + e.getOriginalMessage() + ")");
        }
        if (header == null || !header.isObject()) {
            throw new CheckpointException(bad + "header is not a JSON object");
        }
        long dataStart = 8 + n;
        long dataLen = all.length - dataStart;
        Map<String, String> meta = new LinkedHashMap<>();
        Map<String, Entry> tensors = new LinkedHashMap<>();
        List<long[]> ranges = new ArrayList<>();
        Iterator<Map.Entry<String, JsonNode>> it = header.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> f = it.next();
            if (f.getKey().equals("__metadata__")) {
                if (!f.getValue().isObject()) {
                    throw new CheckpointException(bad + "__metadata__ is not an object");
                }
                f.getValue().fields().forEachRemaining(m -> {
                    if (!m.getValue().isTextual()) {
                        throw new CheckpointException(bad + "metadata '" + m.getKey() + "' is not a string");
                    }
                    meta.put(m.getKey(), m.getValue().asText());
                });
                continue;
            }
            String t = "tensor '" + f.getKey() + "': ";
            JsonNode d = f.getValue();
            if (!d.isObject() || !d.path("dtype").isTextual() || !d.path("shape").isArray() || !d.path("data_offsets").isArray()) {
                throw new CheckpointException(bad + t + "needs dtype, shape and data_offsets");
            }
            DType dtype = switch (d.get("dtype").asText()) {
                case "F32" -> DType.F32;
                case "F64" -> DType.F64;
                case "I32" -> DType.I32;
                default -> throw new CheckpointException(bad + t + "unsupported dtype " + d.get("dtype").asText());
            };
            JsonNode sh = d.get("shape");
            if (sh.size() > 8) {
                throw new CheckpointException(bad + t + "rank " + sh.size() + " is too large");
            }
            int[] dims = new int[sh.size()];
            long count = 1;
            for (int i = 0; i < dims.length; i++) {
                JsonNode x = sh.get(i);
                if (!x.canConvertToInt() || !x.isIntegralNumber() || x.asInt() < 0) {
                    throw new CheckpointException(bad + t + "shape entry " + x + " is not a non-negative integer");
                }
                dims[i] = x.asInt();
                count *= dims[i];
                if (count > dataLen) {
                    throw new CheckpointException(bad + t + "shape " + sh + " is larger than the data section");
                }
            }
            JsonNode off = d.get("data_offsets");
            if (off.size() != 2 || !off.get(0).isIntegralNumber() || !off.get(1).isIntegralNumber()) {
                throw new CheckpointException(bad + t + "data_offsets must be two integers");
            }
            long b = off.get(0).asLong(), e = off.get(1).asLong();
            if (b < 0 || e < b || e > dataLen) {
                throw new CheckpointException(bad + t + "data_offsets [" + b + ", " + e + "] outside the data section of " + dataLen + " bytes"
                        + (b >= 0 && e >= b ? " (truncated?)" : ""));
            }
            if (e - b != count * dtype.byteSize()) {
                throw new CheckpointException(bad + t + "shape " + sh + " x " + dtype + " needs " + count * dtype.byteSize()
                        + " bytes, data_offsets give " + (e - b));
            }
            ranges.add(new long[]{b, e});
            byte[] data = java.util.Arrays.copyOfRange(all, (int) (dataStart + b), (int) (dataStart + e));
            tensors.put(f.getKey(), new Entry(f.getKey(), dtype, Shape.of(dims), data));
        }
        ranges.sort((x, y) -> Long.compare(x[0], y[0]));
        for (int i = 1; i < ranges.size(); i++) {
            if (ranges.get(i)[0] < ranges.get(i - 1)[1]) {
                throw new CheckpointException(bad + "tensor data ranges overlap");
            }
        }
        return new Contents(meta, tensors);
    }
}
