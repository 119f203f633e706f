package streamsbench;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The orders context's PlaceOrder and AddItem rules, as {@code decide} and {@code evolve} in
 * streams/contexts/orders.py state them: same checks in the same order, same rejection reasons.
 * Only the two commands of the benchmark's traffic are known here; any other is rejected.
 */
final class Orders {
    /** An order holds at most this many lines (orders.MAX_LINES). */
    static final int MAX_LINES = 100;

    private Orders() {}

    /** A command of the orders context. */
    sealed interface Command permits PlaceOrder, AddItem, Unknown {}

    /** Open a new order for a customer. */
    record PlaceOrder(String customerId, String currency) implements Command {}

    /** Add units of a sku; {@code currency} is null when the command does not name one. */
    record AddItem(String sku, long quantity, long unitPriceCents, String currency) implements Command {}

    /** A command type these rules do not know. */
    record Unknown(String type) implements Command {}

    /** An event of the orders context. */
    sealed interface Event permits OrderPlaced, ItemAdded {}

    /** An order was opened. */
    record OrderPlaced(String customerId, String currency) implements Event {}

    /** Units of a sku were added (a line is created or its quantity raised). */
    record ItemAdded(String sku, long quantity, long unitPriceMinor) implements Event {}

    /** One sku in an order. */
    record Line(String sku, long quantity, long unitPriceCents) {}

    /** An order as its events made it; {@code status} is "none" until the order is placed. */
    record Order(String status, String customerId, String currency, List<Line> lines) {
        /** The state of an order id nobody placed yet. */
        static final Order INITIAL = new Order("none", "", "", List.of());

        /** The line for {@code sku}, or null. */
        Line line(String sku) {
            for (Line line : lines) {
                if (line.sku().equals(sku)) {
                    return line;
                }
            }
            return null;
        }
    }

    /** A command broke a rule; {@code reason} is the Python context's machine-readable reason. */
    static final class Rejected extends Exception {
        private static final long serialVersionUID = 1L;
        final String reason;

        Rejected(String reason) {
            super(reason, null, false, false); // no stack trace: rejections are ordinary outcomes
            this.reason = reason;
        }
    }

    /** The event {@code command} causes on {@code state}, or a rejection. */
    static Event decide(Order state, Command command) throws Rejected {
        if (command instanceof PlaceOrder place) {
            if (!state.status().equals("none")) {
                throw new Rejected("order_already_exists");
            }
            if (place.customerId().isBlank()) {
                throw new Rejected("missing_customer");
            }
            if (!isCurrencyCode(place.currency())) {
                throw new Rejected("invalid_currency");
            }
            return new OrderPlaced(place.customerId(), place.currency());
        }
        if (command instanceof AddItem add) {
            requireOpen(state);
            if (add.currency() != null && !add.currency().equals(state.currency())) {
                throw new Rejected("currency_mismatch");
            }
            if (add.sku().isBlank()) {
                throw new Rejected("missing_sku");
            }
            if (add.quantity() <= 0) {
                throw new Rejected("invalid_quantity");
            }
            if (add.unitPriceCents() < 0) {
                throw new Rejected("invalid_price");
            }
            Line existing = state.line(add.sku());
            if (existing == null && state.lines().size() >= MAX_LINES) {
                throw new Rejected("too_many_lines");
            }
            if (existing != null && existing.unitPriceCents() != add.unitPriceCents()) {
                throw new Rejected("price_mismatch");
            }
            return new ItemAdded(add.sku(), add.quantity(), add.unitPriceCents());
        }
        throw new Rejected("unknown_command");
    }

    /** {@code state} with {@code event} applied. */
    static Order evolve(Order state, Event event) {
        if (event instanceof OrderPlaced placed) {
            return new Order("placed", placed.customerId(), placed.currency(), state.lines());
        }
        ItemAdded added = (ItemAdded) event;
        List<Line> lines = new ArrayList<>(state.lines().size() + 1);
        boolean grown = false;
        for (Line line : state.lines()) {
            if (!grown && line.sku().equals(added.sku())) {
                lines.add(new Line(line.sku(), line.quantity() + added.quantity(), line.unitPriceCents()));
                grown = true;
            } else {
                lines.add(line);
            }
        }
        if (!grown) {
            lines.add(new Line(added.sku(), added.quantity(), added.unitPriceMinor()));
        }
        return new Order(state.status(), state.customerId(), state.currency(), Collections.unmodifiableList(lines));
    }

    private static void requireOpen(Order state) throws Rejected {
        if (state.status().equals("none")) {
            throw new Rejected("order_not_found");
        }
        if (!state.status().equals("placed")) {
            throw new Rejected("order_not_modifiable");
        }
    }

    /** Three upper-case letters (the Python rule: length 3, alphabetic, upper case). */
    private static boolean isCurrencyCode(String currency) {
        return currency.length() == 3
                && currency.chars().allMatch(c -> Character.isLetter(c) && Character.isUpperCase(c));
    }
}
