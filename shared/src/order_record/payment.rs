//! The money side of [`OrderRecord`]: cancellation (with the refund of a captured payment),
//! refunds, and returns (`requested → received → inspected → refunded`). Each transition is
//! a pure decision on the record: it records its events (timeline + outbox, typed payloads)
//! and returns whether anything changed — `false` when the same cause already ran (a retried
//! request, a redelivery), so the step runner stores nothing and only finishes what is owed.
//! A refused transition returns a [`PaymentError`] and leaves the record as it was.
//!
//! Payment is its own dimension ([`OrderRecord::payment_status`]): refunds never move the
//! order status, so a partially refunded split order still ships and delivers.
//!
//! Returns live on the order's timeline: a return's state is replayed from its `return.*`
//! events ([`OrderRecord::find_return`]), so the order and its returns change in one
//! compare-and-swap.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{OrderRecord, ShipmentStatus, StockMove};
use crate::refund::refund_allowed;
use crate::{
    EventType, Inspection, LineRestock, LocationId, OrderCancelled, OrderStatus, PaymentError,
    PaymentState, PaymentStatus, RefundCause, RefundItem, RefundRecorded, RestockPlacement,
    ReturnAuthorization, ReturnError, ReturnId, ReturnInspected, ReturnReceived, ReturnRefunded,
    ReturnRequested, ReturnState, ReturnedItem, Sku,
};

fn payload<T: Serialize>(data: &T) -> Result<serde_json::Value, PaymentError> {
    serde_json::to_value(data).map_err(|e| PaymentError::Payload(e.to_string()))
}

fn shipped(status: ShipmentStatus) -> bool {
    matches!(status, ShipmentStatus::Shipped | ShipmentStatus::Delivered)
}

impl OrderRecord {
    /// The payment dimension: pending, authorized, partially paid, voided, paid, partially
    /// refunded or refunded.
    pub fn payment_status(&self) -> PaymentState {
        let state = PaymentState::of(&self.ledger, self.status() == OrderStatus::Cancelled);
        // The ledger knows captures, not what the payment still waits for.
        match (self.order.payment().status(), state) {
            (PaymentStatus::Pending, PaymentState::Authorized) => PaymentState::Pending,
            (PaymentStatus::PartiallyPaid, PaymentState::Paid) => PaymentState::PartiallyPaid,
            (_, state) => state,
        }
    }

    /// The refund booked for `cause`, as recorded on its event.
    pub fn refund_for(&self, cause: &RefundCause) -> Option<RefundRecorded> {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e.event_type(),
                    EventType::OrderRefunded | EventType::OrderPartiallyRefunded
                )
            })
            .filter_map(|e| serde_json::from_value::<RefundRecorded>(e.data().clone()).ok())
            .find(|r| r.cause == *cause)
    }

    /// Refunds `items` for `cause` and records `order.partially_refunded` or
    /// `order.refunded` (never changing the order status). `Ok(false)` when `cause` was
    /// refunded already.
    ///
    /// # Errors
    /// [`PaymentError::NotRefundable`] before anything shipped (unless cancelled);
    /// [`PaymentError::FullyRefunded`]; [`PaymentError::Refund`] when the ledger refuses
    /// (above captured minus refunded, units already refunded …).
    pub fn refund(
        &mut self,
        cause: RefundCause,
        items: &[RefundItem],
        reason: Option<String>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        if self.refund_for(&cause).is_some() {
            return Ok(false);
        }
        let status = self.status();
        refund_allowed(status, &self.ledger)?;
        let (ledger, refund) = self.ledger.refund(&self.order, items)?;
        let event_type = if ledger.is_fully_refunded() {
            EventType::OrderRefunded
        } else {
            EventType::OrderPartiallyRefunded
        };
        let data = payload(&RefundRecorded {
            cause,
            reason,
            refund: refund.clone(),
            refunded_total: ledger.refunded().amount().to_string(),
            refundable: ledger.refundable().amount().to_string(),
            currency: self.order.currency().code().to_string(),
            payment_status: PaymentState::of(&ledger, status == OrderStatus::Cancelled),
        })?;
        self.record(event_type, data, event_id, now)?;
        self.ledger = ledger;
        self.refunds.push(refund);
        Ok(true)
    }

    /// Cancels an order that has not shipped: records `order.cancelled` and, when money was
    /// captured, refunds all of it (cause [`RefundCause::Cancellation`]). Releasing the stock
    /// it holds is the stock step's (`oms_edge::release_cancelled`). `Ok(false)` when it is
    /// cancelled already.
    ///
    /// # Errors
    /// [`PaymentError::NotCancellable`] once something has shipped (or it was rejected).
    pub fn cancel(
        &mut self,
        reason: Option<String>,
        event_ids: [Uuid; 2],
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let from = self.status();
        if from == OrderStatus::Cancelled {
            return Ok(false);
        }
        if !from.is_cancellable() {
            return Err(PaymentError::NotCancellable(from));
        }
        let mut next = self.clone();
        let data = payload(&OrderCancelled { reason, from })?;
        next.transition(OrderStatus::Cancelled, data, event_ids[0], now)?;
        let refundable = next.ledger.refundable();
        if !refundable.is_zero() {
            let items = [RefundItem::Amount { amount: refundable }];
            next.refund(RefundCause::Cancellation, &items, None, event_ids[1], now)?;
        }
        *self = next;
        Ok(true)
    }

    /// Units shipped per order line (shipments shipped or delivered), in line order: each
    /// SKU's shipped units go to the order's lines of that SKU first to last.
    pub fn units_shipped(&self) -> Vec<u32> {
        let mut by_sku: BTreeMap<&Sku, u32> = BTreeMap::new();
        for s in self.shipments.iter().filter(|s| shipped(s.status)) {
            for l in &s.lines {
                *by_sku.entry(&l.sku).or_insert(0) += l.units;
            }
        }
        self.order
            .lines()
            .iter()
            .map(|l| {
                let left = by_sku.entry(l.sku()).or_insert(0);
                let take = (*left).min(l.quantity().get());
                *left -= take;
                take
            })
            .collect()
    }

    /// Every return of the order, replayed from its `return.*` events (oldest first).
    /// Events whose data does not read as their payload type are skipped.
    pub fn all_returns(&self) -> Vec<ReturnAuthorization> {
        enum Step {
            Received,
            Inspected(Vec<crate::ReturnLine>),
            Refunded,
        }
        let mut out: Vec<ReturnAuthorization> = Vec::new();
        let order_id = self.order.id();
        for e in &self.events {
            let data = e.data().clone();
            let step = match e.event_type() {
                EventType::ReturnRequested => {
                    let opened = serde_json::from_value::<ReturnRequested>(data)
                        .ok()
                        .and_then(|p| {
                            let state = ReturnState::Requested;
                            ReturnAuthorization::restore(p.return_id, order_id, state, p.lines).ok()
                        });
                    out.extend(opened);
                    continue;
                }
                EventType::ReturnReceived => serde_json::from_value::<ReturnReceived>(data)
                    .ok()
                    .map(|p| (p.return_id, Step::Received)),
                EventType::ReturnInspected => serde_json::from_value::<ReturnInspected>(data)
                    .ok()
                    .map(|p| (p.return_id, Step::Inspected(p.lines))),
                EventType::ReturnRefunded => serde_json::from_value::<ReturnRefunded>(data)
                    .ok()
                    .map(|p| (p.return_id, Step::Refunded)),
                _ => None,
            };
            let Some((rid, step)) = step else { continue };
            let Some(ra) = out.iter_mut().find(|ra| ra.id() == rid) else {
                continue;
            };
            let next = match step {
                Step::Received => ra.receive(),
                Step::Inspected(lines) => {
                    ReturnAuthorization::restore(rid, order_id, ReturnState::Inspected, lines)
                }
                Step::Refunded => ra.mark_refunded(),
            };
            if let Ok(next) = next {
                *ra = next;
            }
        }
        out
    }

    /// One return of the order, as its events leave it.
    pub fn find_return(&self, id: ReturnId) -> Option<ReturnAuthorization> {
        self.all_returns().into_iter().find(|r| r.id() == id)
    }

    /// The restock plan recorded when return `id` was inspected (empty before).
    pub fn restock_of(&self, id: ReturnId) -> Vec<LineRestock> {
        self.events
            .iter()
            .filter(|e| e.event_type() == EventType::ReturnInspected)
            .filter_map(|e| serde_json::from_value::<ReturnInspected>(e.data().clone()).ok())
            .find(|p| p.return_id == id)
            .map(|p| p.restock)
            .unwrap_or_default()
    }

    /// Opens return `id` for `items` and records `return.requested`. Capped per line by the
    /// units shipped less what earlier returns cover. `Ok(false)` when it is open already.
    ///
    /// # Errors
    /// [`PaymentError::Return`]: nothing shipped, an unknown or duplicate line, more units
    /// than shipped and not yet returned.
    pub fn request_return(
        &mut self,
        id: ReturnId,
        items: &[ReturnedItem],
        reason: Option<String>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let previous = self.all_returns();
        if previous.iter().any(|r| r.id() == id) {
            return Ok(false);
        }
        let ra =
            ReturnAuthorization::request(id, &self.order, &self.units_shipped(), items, &previous)?;
        let data = payload(&ReturnRequested {
            return_id: id,
            lines: ra.lines().to_vec(),
            reason,
        })?;
        self.record(EventType::ReturnRequested, data, event_id, now)?;
        self.returns.push(id);
        Ok(true)
    }

    /// Books return `id`'s parcel in (`requested → received`, `return.received`).
    /// `Ok(false)` when it was received already.
    ///
    /// # Errors
    /// [`PaymentError::UnknownReturn`]; [`ReturnError::WrongState`] once it is inspected.
    pub fn receive_return(
        &mut self,
        id: ReturnId,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let ra = self
            .find_return(id)
            .ok_or(PaymentError::UnknownReturn(id))?;
        if ra.state() == ReturnState::Received {
            return Ok(false);
        }
        ra.receive()?;
        let data = payload(&ReturnReceived { return_id: id })?;
        self.record(EventType::ReturnReceived, data, event_id, now)?;
        Ok(true)
    }

    /// Inspects received return `id`: records the verdicts and where the accepted units go
    /// back on hand (`return.inspected`, and as owed [`StockMove::Restock`]s), then refunds the
    /// accepted units (cause [`RefundCause::Return`]) and records `return.refunded` — all or
    /// nothing. `Ok(false)` when it was inspected already with the same verdicts.
    ///
    /// # Errors
    /// [`PaymentError::UnknownReturn`]; [`ReturnError::WrongState`] before it is received;
    /// [`PaymentError::VerdictsDiffer`]; verdicts that do not match the returned lines;
    /// [`PaymentError::NowhereToRestock`]; a refund the ledger refuses.
    pub fn inspect_return(
        &mut self,
        id: ReturnId,
        verdicts: &[Inspection],
        event_ids: [Uuid; 3],
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let ra = self
            .find_return(id)
            .ok_or(PaymentError::UnknownReturn(id))?;
        match ra.state() {
            ReturnState::Received => {}
            ReturnState::Requested => {
                return Err(ReturnError::WrongState {
                    expected: ReturnState::Received,
                    actual: ReturnState::Requested,
                }
                .into())
            }
            _ if same_verdicts(&ra, verdicts) => return Ok(false),
            state => return Err(PaymentError::VerdictsDiffer(state)),
        }
        let inspected = ra.inspect(verdicts)?;
        let items = match inspected.refund_items() {
            Ok(items) => Some(items),
            Err(ReturnError::NothingAccepted) => None,
            Err(e) => return Err(e.into()),
        };
        let mut next = self.clone();
        let restock = self.restock_plan(&inspected)?;
        for line in &restock {
            for p in &line.placements {
                next.owe_move(StockMove::Restock {
                    sku: p.sku.clone(),
                    location: p.location.clone(),
                    units: p.units,
                    token: format!("return:{id}:{}", line.line),
                });
            }
        }
        let data = payload(&ReturnInspected {
            return_id: id,
            lines: inspected.lines().to_vec(),
            restock,
        })?;
        next.record(EventType::ReturnInspected, data, event_ids[0], now)?;
        if let Some(items) = items {
            let cause = RefundCause::Return { return_id: id };
            next.refund(cause.clone(), &items, None, event_ids[1], now)?;
            let refund = next
                .refund_for(&cause)
                .map(|r| r.refund)
                .ok_or_else(|| PaymentError::Payload("the refund just booked is missing".into()))?;
            let data = payload(&ReturnRefunded {
                return_id: id,
                refund,
            })?;
            next.record(EventType::ReturnRefunded, data, event_ids[2], now)?;
        }
        *self = next;
        Ok(true)
    }

    /// Where an inspected return's accepted units go: back to the locations their SKU
    /// shipped from, in shipment order, up to what shipped there less what this order's
    /// other returns already put back; any excess goes to the first location that shipped
    /// the SKU.
    fn restock_plan(&self, ra: &ReturnAuthorization) -> Result<Vec<LineRestock>, PaymentError> {
        let mut capacity: Vec<(Sku, LocationId, u32)> = Vec::new();
        for s in self.shipments.iter().filter(|s| shipped(s.status)) {
            for l in &s.lines {
                match capacity
                    .iter_mut()
                    .find(|(sku, loc, _)| *sku == l.sku && *loc == s.location)
                {
                    Some(slot) => slot.2 += l.units,
                    None => capacity.push((l.sku.clone(), s.location.clone(), l.units)),
                }
            }
        }
        let earlier = self
            .all_returns()
            .into_iter()
            .filter(|r| r.id() != ra.id())
            .flat_map(|r| self.restock_of(r.id()))
            .flat_map(|r| r.placements);
        for p in earlier {
            if let Some(slot) = capacity
                .iter_mut()
                .find(|(sku, loc, _)| *sku == p.sku && *loc == p.location)
            {
                slot.2 = slot.2.saturating_sub(p.units);
            }
        }
        let mut out = Vec::new();
        for line in ra.lines() {
            let mut left = line.accepted.unwrap_or(0);
            if left == 0 {
                continue;
            }
            let mut placements: Vec<RestockPlacement> = Vec::new();
            for (sku, location, cap) in capacity
                .iter_mut()
                .filter(|(sku, _, cap)| *sku == line.sku && *cap > 0)
            {
                let take = left.min(*cap);
                *cap -= take;
                left -= take;
                placements.push(RestockPlacement {
                    sku: sku.clone(),
                    location: location.clone(),
                    units: take,
                });
                if left == 0 {
                    break;
                }
            }
            if left > 0 {
                let home = self
                    .shipments
                    .iter()
                    .find(|s| shipped(s.status) && s.lines.iter().any(|l| l.sku == line.sku))
                    .map(|s| s.location.clone())
                    .ok_or_else(|| PaymentError::NowhereToRestock {
                        line: line.line,
                        sku: line.sku.clone(),
                    })?;
                match placements.iter_mut().find(|p| p.location == home) {
                    Some(p) => p.units += left,
                    None => placements.push(RestockPlacement {
                        sku: line.sku.clone(),
                        location: home,
                        units: left,
                    }),
                }
            }
            out.push(LineRestock {
                line: line.line,
                placements,
            });
        }
        Ok(out)
    }
}

/// Whether `verdicts` are exactly the ones `ra` recorded.
fn same_verdicts(ra: &ReturnAuthorization, verdicts: &[Inspection]) -> bool {
    verdicts.len() == ra.lines().len()
        && verdicts.iter().all(|i| {
            ra.lines()
                .iter()
                .any(|l| l.line == i.line && l.accepted == Some(i.accepted))
        })
}
