package streamsbench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The peers' JSON wire format (bench/peers/wire.py): a command is
 * {@code {"type": "AddItem", "sku": ..., "quantity": ..., "unit_price_cents": ...}}, an output
 * record is an event {@code {"type": "ItemAdded", ...}} or {@code {"rejected": reason, "command": type}}.
 */
final class Wire {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Wire() {}

    /** The command in a record's value. */
    static Orders.Command command(byte[] value) {
        JsonNode node;
        try {
            node = JSON.readTree(value);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        String type = node.path("type").asText();
        switch (type) {
            case "PlaceOrder":
                return new Orders.PlaceOrder(node.path("customer_id").asText(), node.path("currency").asText("EUR"));
            case "AddItem":
                JsonNode currency = node.path("currency");
                return new Orders.AddItem(
                        node.path("sku").asText(),
                        node.path("quantity").asLong(),
                        node.path("unit_price_cents").asLong(),
                        currency.isTextual() ? currency.asText() : null);
            default:
                return new Orders.Unknown(type);
        }
    }

    /** An event as an output record's value. */
    static byte[] event(Orders.Event event) {
        ObjectNode node = JSON.createObjectNode();
        if (event instanceof Orders.OrderPlaced placed) {
            node.put("type", "OrderPlaced").put("customer_id", placed.customerId()).put("currency", placed.currency());
        } else {
            Orders.ItemAdded added = (Orders.ItemAdded) event;
            node.put("type", "ItemAdded")
                    .put("sku", added.sku())
                    .put("quantity", added.quantity())
                    .put("unit_price_minor", added.unitPriceMinor());
        }
        return bytes(node);
    }

    /** A rejection as an output record's value. */
    static byte[] rejection(String reason, Orders.Command command) {
        String type = command instanceof Orders.Unknown unknown ? unknown.type() : command.getClass().getSimpleName();
        return bytes(JSON.createObjectNode().put("rejected", reason).put("command", type));
    }

    /** The fields of an output record (for the rules check). */
    static JsonNode read(byte[] value) {
        try {
            return JSON.readTree(value);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] bytes(ObjectNode node) {
        try {
            return JSON.writeValueAsBytes(node);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
