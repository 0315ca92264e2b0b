package dev.cellar.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guards a property of the bytecode that the speed of the cpu backend rests on: VectorPointwise.activate must stay too
 * long for C2 to inline (FreqInlineSize, 325 bytes on x86-64 for JDK 17 to 25), so that its vector code is always
 * compiled at the top of its own compilation, where the Vector API's intrinsics fit under MaxInlineLevel. The class
 * file is read as bytes; the class itself is not loaded, so this runs without jdk.incubator.vector too.
 */
class VectorPointwiseShapeTest {
    private static final int FREQ_INLINE_SIZE = 325;

    @Test
    void theActivationKernelIsTooLongForC2ToInline() throws IOException {
        Map<String, Integer> lengths = codeLengths("VectorPointwise.class");
        Integer activate = lengths.get("activate");
        assertNotNull(activate, "VectorPointwise has no method activate; methods: " + lengths.keySet());
        assertTrue(activate > FREQ_INLINE_SIZE, "VectorPointwise.activate is " + activate + " bytes of bytecode, at most "
                + FREQ_INLINE_SIZE + ": C2 may inline it into deep callers and box its vectors");
    }

    @Test
    void theParserReadsTheLengthsOfThisClass() throws IOException {
        Map<String, Integer> lengths = codeLengths("VectorPointwiseShapeTest.class");
        // codeLengths itself is a long method, FREQ_INLINE_SIZE's getter-free test a short one
        assertTrue(lengths.get("codeLengths") > 100, lengths.toString());
        assertTrue(lengths.get("theParserReadsTheLengthsOfThisClass") < lengths.get("codeLengths"), lengths.toString());
    }

    /** Each method's name and the length of its Code attribute (JVMS 4.1, 4.4, 4.6, 4.7.3). */
    private static Map<String, Integer> codeLengths(String resource) throws IOException {
        try (InputStream raw = VectorPointwiseShapeTest.class.getResourceAsStream(resource)) {
            assertNotNull(raw, resource + " is not on the test class path");
            DataInputStream in = new DataInputStream(raw);
            in.readInt(); // magic
            in.readUnsignedShort(); // minor
            in.readUnsignedShort(); // major
            int count = in.readUnsignedShort();
            String[] utf8 = new String[count];
            for (int i = 1; i < count; i++) {
                int tag = in.readUnsignedByte();
                switch (tag) {
                    case 1 -> utf8[i] = in.readUTF();
                    case 3, 4, 9, 10, 11, 12, 17, 18 -> in.skipNBytes(4);
                    case 5, 6 -> {
                        in.skipNBytes(8);
                        i++; // a long or double takes two entries
                    }
                    case 7, 8, 16, 19, 20 -> in.skipNBytes(2);
                    case 15 -> in.skipNBytes(3);
                    default -> throw new IOException("constant pool tag " + tag + " at entry " + i + " of " + resource);
                }
            }
            in.skipNBytes(6); // access flags, this class, super class
            in.skipNBytes(2L * in.readUnsignedShort()); // interfaces
            int fields = in.readUnsignedShort();
            for (int f = 0; f < fields; f++) {
                in.skipNBytes(6);
                skipAttributes(in);
            }
            Map<String, Integer> lengths = new HashMap<>();
            int methods = in.readUnsignedShort();
            for (int m = 0; m < methods; m++) {
                in.skipNBytes(2);
                String name = utf8[in.readUnsignedShort()];
                in.skipNBytes(2);
                int attributes = in.readUnsignedShort();
                for (int a = 0; a < attributes; a++) {
                    String attribute = utf8[in.readUnsignedShort()];
                    int length = in.readInt();
                    if (attribute.equals("Code")) {
                        in.skipNBytes(4); // max_stack, max_locals
                        int code = in.readInt();
                        lengths.merge(name, code, Math::max);
                        in.skipNBytes(length - 8L);
                    } else {
                        in.skipNBytes(length);
                    }
                }
            }
            return lengths;
        }
    }

    private static void skipAttributes(DataInputStream in) throws IOException {
        int attributes = in.readUnsignedShort();
        for (int a = 0; a < attributes; a++) {
            in.skipNBytes(2);
            in.skipNBytes(in.readInt() & 0xffffffffL);
        }
    }
}
