package streamsbench;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/** The order state in the RocksDB store and its changelog: a small binary record (DataOutput). */
final class OrderSerde {
    private OrderSerde() {}

    /** The serde of the store's values. */
    static Serde<Orders.Order> serde() {
        return Serdes.serdeFrom(serializer(), deserializer());
    }

    private static Serializer<Orders.Order> serializer() {
        return (topic, order) -> {
            if (order == null) {
                return null;
            }
            ByteArrayOutputStream buffer = new ByteArrayOutputStream(32 + 24 * order.lines().size());
            try (DataOutputStream out = new DataOutputStream(buffer)) {
                out.writeUTF(order.status());
                out.writeUTF(order.customerId());
                out.writeUTF(order.currency());
                out.writeInt(order.lines().size());
                for (Orders.Line line : order.lines()) {
                    out.writeUTF(line.sku());
                    out.writeLong(line.quantity());
                    out.writeLong(line.unitPriceCents());
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return buffer.toByteArray();
        };
    }

    private static Deserializer<Orders.Order> deserializer() {
        return (topic, data) -> {
            if (data == null) {
                return null;
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
                String status = in.readUTF();
                String customerId = in.readUTF();
                String currency = in.readUTF();
                int n = in.readInt();
                List<Orders.Line> lines = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    lines.add(new Orders.Line(in.readUTF(), in.readLong(), in.readLong()));
                }
                return new Orders.Order(status, customerId, currency, Collections.unmodifiableList(lines));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        };
    }
}
