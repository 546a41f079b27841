//! The product catalog the shop starts with (owned by the inventory service's `products`
//! table): ids, names, exact prices, opening stock and low-stock thresholds.

use crate::db::Database;

/// `(product id, name, unit price, opening stock, low-stock threshold)`.
pub const PRODUCTS: [(&str, &str, &str, i64, i64); 8] = [
    ("SKU-KEYBOARD", "Mechanical keyboard", "89.90", 500, 50),
    ("SKU-MOUSE", "Wireless mouse", "24.99", 800, 80),
    ("SKU-MONITOR", "27\" monitor", "249.00", 200, 20),
    ("SKU-HEADSET", "Headset", "59.50", 400, 40),
    ("SKU-WEBCAM", "HD webcam", "39.95", 300, 30),
    ("SKU-DOCK", "USB-C dock", "129.00", 150, 15),
    ("SKU-CABLE", "USB-C cable", "9.99", 2000, 200),
    ("SKU-CHAIR", "Office chair", "319.00", 60, 10),
];

/// Inserts the catalog's products that are not in the database yet; returns how many.
pub async fn seed(db: &Database) -> sqlx::Result<u64> {
    let mut added = 0;
    for (id, name, price, stock, threshold) in PRODUCTS {
        added += sqlx::query(
            "INSERT INTO products (product_id, name, unit_price, available, reserved, threshold)
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(price)
        .bind(stock)
        .bind(threshold)
        .execute(db.pool())
        .await?
        .rows_affected();
    }
    Ok(added)
}
