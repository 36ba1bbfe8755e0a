"""Drives the official Cryptolens Python SDK (`licensing` from PyPI) against a running Keyturn.

Environment: KEYTURN_URL (http://127.0.0.1:PORT), KEYTURN_ADMIN (an admin token).
Prints one `PASS name` / `FAIL name: detail` line per check and `N passed, M failed` last.
"""

import base64
import datetime
import json
import os
import sys
import urllib.parse
import urllib.request

from licensing.internal import HelperMethods
from licensing.methods import Customer, Data, Helpers, Key, Message, PaymentForm, Product, Subscription
from licensing.models import LicenseKey, RSAPublicKey, Response

URL = os.environ["KEYTURN_URL"].rstrip("/")
ADMIN = os.environ["KEYTURN_ADMIN"]
HelperMethods.server_address = URL + "/api/"

LIMIT = "Cannot activate the new device as the limit has been reached."
BLOCKED = "The key is blocked and cannot be accessed."
KEY_OR_PERMISSION = "Not enough permission and/or key not found."
BOUND = "The int value cannot pass the bound."
DATA_PERMISSIONS = ["cryptolens:adddataobject", "cryptolens:listdataobjects", "cryptolens:removedataobject",
                    "cryptolens:setintvalue", "cryptolens:setstringvalue", "cryptolens:incrementintvalue",
                    "cryptolens:decrementintvalue"]

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS " + name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, detail))


def native(method, path, body=None):
    """Keyturn's own /v1 API, to set up products and tokens."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + ADMIN)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        raw = r.read().decode()
        return json.loads(raw) if r.headers.get_content_type() == "application/json" else raw


def raw(method, params):
    """A Cryptolens method the SDK has no function for, as a form POST."""
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(urllib.request.Request(URL + "/api/" + method, data=data)) as r:
        return json.loads(r.read().decode())


def days_between(a, b):
    return (b - a).total_seconds() / 86400.0


def run():
    product = native("POST", "/v1/products", {"name": "Python SDK", "features": ["pro", "team", "export", "cloud"]})
    pid = product["id"]
    other = native("POST", "/v1/products", {"name": "Other", "features": []})["id"]
    pub = native("GET", "/v1/products/%d/public-key?format=rsa-xml" % pid).strip()
    check("public key is one-line RSAKeyValue XML", pub.startswith("<RSAKeyValue><Modulus>") and "\n" not in pub, pub[:40])
    methods = ["activate", "deactivate", "getkey", "createkey", "createtrialkey", "extendlicense", "blockkey",
               "unblockkey", "addfeature", "removefeature", "machinelocklimit", "changenotes", "changecustomer",
               "addcustomer", "getcustomerlicenses", "getcustomers", "getkeys", "getproducts",
               "getcustomerlicensesbysecret", "editcustomer", "removecustomer"]
    token = native("POST", "/v1/tokens", {"name": "python sdk", "permissions": ["cryptolens:" + m for m in methods]})["token"]
    getkey_only = native("POST", "/v1/tokens", {"name": "getkey only", "permissions": ["cryptolens:getkey"]})["token"]

    # Create a key with features, a period, a machine limit and a new customer.
    created, msg = Key.create_key(token, pid, period=30, f1=True, f3=True, max_no_of_machines=2,
                                  new_customer=True, name="Ada Lovelace", email="ada@example.com",
                                  notes="bought in the shop")
    check("create_key returns a key", created is not None and created.get("key"), msg)
    key = created["key"]

    # Activate on a machine: the SDK verifies the signature with the published key.
    lic, msg = Key.activate(token, pub, pid, key, "machine-A", friendly_name="Ada's laptop")
    check("activate verifies the RSA signature", lic is not None, msg)
    if lic is None:
        return
    response = lic.raw_response
    check("signature verifies independently", HelperMethods.verify_signature(response, RSAPublicKey.from_string(pub)))
    tampered = Response(base64.b64encode(base64.b64decode(response.license_key).replace(b'"F2":false', b'"F2":true ')).decode(),
                        response.signature, 0, "")
    check("tampered license fails verification", not HelperMethods.verify_signature(tampered, RSAPublicKey.from_string(pub)))
    check("features map to F1..F8", (lic.f1, lic.f2, lic.f3, lic.f4, lic.f5) == (True, False, True, False, False),
          (lic.f1, lic.f2, lic.f3, lic.f4))
    check("period and expiry", lic.period == 30 and abs(days_between(lic.created, lic.expires) - 30) < 0.01,
          (lic.period, lic.created, lic.expires))
    check("not expired", Helpers.HasNotExpired(lic))
    check("customer", lic.customer is not None and lic.customer["Name"] == "Ada Lovelace"
          and lic.customer["Email"] == "ada@example.com", lic.customer)
    check("notes, product, key", lic.notes == "bought in the shop" and lic.product_id == pid and lic.key == key)
    check("machine limit and sign date", lic.max_no_of_machines == 2 and
          abs((datetime.datetime.now() - lic.sign_date).total_seconds()) < 120, (lic.max_no_of_machines, lic.sign_date))
    check("IsOnRightMachine on the activated machine",
          Helpers.IsOnRightMachine(lic, custom_machine_code="machine-A"))
    check("IsOnRightMachine false elsewhere", not Helpers.IsOnRightMachine(lic, custom_machine_code="machine-Z"))
    mids = [(m.Mid, m.FriendlyName) for m in lic.activated_machines]
    check("friendly name recorded (model version 3)", mids == [("machine-A", "Ada's laptop")], mids)

    again, msg = Key.activate(token, pub, pid, key, "machine-A")
    check("re-activating the same machine is fine", again is not None, msg)
    b, msg = Key.activate(token, pub, pid, key, "machine-B")
    check("second machine within the limit", b is not None and len(b.activated_machines) == 2, msg)
    c, msg = Key.activate(token, pub, pid, key, "machine-C")
    check("machine limit reached", c is None and msg == LIMIT, msg)
    ok, msg = Key.deactivate(token, pid, key, "machine-B")
    check("deactivate", ok and msg == "", msg)
    c, msg = Key.activate(token, pub, pid, key, "machine-C")
    check("freed seat can be taken", c is not None, msg)
    ok, msg = Key.deactivate(token, pid, key, "never-seen")
    check("deactivate of an unknown machine", not ok and msg.startswith("Either the machine code was never activated"), msg)

    # The SDK's own machine code, and IsOnRightMachine without a custom code.
    mc = Helpers.GetMachineCode()
    own = Key.create_key(token, pid, period=1, max_no_of_machines=1)[0]["key"]
    here, msg = Key.activate(token, pub, pid, own, mc)
    check("GetMachineCode activation and IsOnRightMachine", mc is not None and here is not None
          and Helpers.IsOnRightMachine(here), (mc, msg))

    # Offline round trip.
    saved = lic.save_as_string()
    loaded = LicenseKey.load_from_string(pub, saved, 1)
    check("save_as_string / load_from_string", loaded is not None and loaded.key == key and loaded.f3)
    bad = json.loads(saved)
    bad["licenseKey"] = base64.b64encode(base64.b64decode(bad["licenseKey"]).replace(b'"Block":false', b'"Block":true ')).decode()
    check("load_from_string refuses a tampered license", LicenseKey.load_from_string(pub, json.dumps(bad)) is None)
    other_pub = native("GET", "/v1/products/%d/public-key?format=rsa-xml" % other).strip()
    check("load_from_string refuses another product's key", LicenseKey.load_from_string(other_pub, saved) is None)

    # FieldsToReturn hides fields; they stay in the license (the SDK reads each), signed.
    masked, msg = Key.activate(token, pub, pid, key, "machine-A", fields_to_return=2 + 4 + 32 + 64)
    check("fields_to_return hides the id, key, customer and other machines",
          masked is not None and masked.id == 0 and masked.key == "" and masked.customer is None
          and [m.Mid for m in masked.activated_machines] == ["machine-A"] and masked.f1, msg)
    locked = native("POST", "/v1/tokens", {"name": "masked", "feature_lock": 32,
                                           "permissions": ["cryptolens:getkey"]})["token"]
    got, msg = Key.get_key(locked, pub, pid, key)
    check("a token's feature lock hides the customer", got is not None and got.customer is None
          and got.key == key, msg)

    # GetKey reads without activating.
    got, msg = Key.get_key(token, pub, pid, key)
    check("get_key", got is not None and got.key == key and len(got.activated_machines) == 2, msg)

    # Metadata signed with SHA-512.
    res = Key.activate(token, pub, pid, key, "machine-A", metadata=True)
    check("metadata is signed and verified", len(res) == 3 and isinstance(res[2], dict)
          and res[2]["licenseStatus"]["isValid"] is True and res[2]["activatedMachines"] == 2, res[1:])

    # Extend.
    ok, msg = Key.extend_license(token, pid, key, 10)
    extended, _ = Key.get_key(token, pub, pid, key)
    check("extend_license adds days", ok and abs(days_between(lic.expires, extended.expires) - 10) < 0.01,
          (lic.expires, extended and extended.expires))

    # Features, machine limit, notes.
    Key.add_feature(token, pid, key, 2)
    Key.remove_feature(token, pid, key, 1)
    Key.machine_lock_limit(token, pid, key, 5)
    Key.change_notes(token, pid, key, "upgraded")
    changed, _ = Key.get_key(token, pub, pid, key)
    check("add/remove feature, machine lock limit, notes",
          changed is not None and changed.f1 is False and changed.f2 is True and changed.max_no_of_machines == 5
          and changed.notes == "upgraded")
    ok, msg = Key.add_feature(token, pid, key, 7)
    check("a feature the product lacks is bad input", not ok and msg == "The input parameters were incorrect.", msg)

    # Block: activation refused; unblock: allowed again.
    ok, _ = Key.block_key(token, pid, key)
    blocked, msg = Key.activate(token, pub, pid, key, "machine-A")
    check("blocked key refuses activation", ok and blocked is None and msg == BLOCKED, msg)
    Key.unblock_key(token, pid, key)
    unblocked, msg = Key.activate(token, pub, pid, key, "machine-A")
    check("unblocked key activates", unblocked is not None, msg)

    # Floating licenses with overdraft.
    fl = Key.create_key(token, pid, period=10, max_no_of_machines=1)[0]["key"]
    x, msg = Key.activate(token, pub, pid, fl, "float-X", floating_time_interval=300)
    check("floating activation", x is not None and Helpers.IsOnRightMachine(x, is_floating_license=True,
                                                                           custom_machine_code="float-X"), msg)
    check("floating seat is not node-locked", x is not None and not Helpers.IsOnRightMachine(x, custom_machine_code="float-X"))
    y, msg = Key.activate(token, pub, pid, fl, "float-Y", floating_time_interval=300)
    check("floating limit reached", y is None and msg == LIMIT, msg)
    y, msg = Key.activate(token, pub, pid, fl, "float-Y", floating_time_interval=300, max_overdraft=1)
    check("overdraft seat", y is not None and Helpers.IsOnRightMachine(
        y, is_floating_license=True, allow_overdraft=True, custom_machine_code="float-Y")
        and not Helpers.IsOnRightMachine(y, is_floating_license=True, custom_machine_code="float-Y"), msg)
    z, msg = Key.activate(token, pub, pid, fl, "float-Z", floating_time_interval=300, max_overdraft=1)
    check("overdraft is bounded", z is None and msg == LIMIT, msg)
    ok, msg = Key.deactivate(token, pid, fl, "float-X", floating=True)
    ok2, _ = Key.deactivate(token, pid, fl, "float-Y", floating=True)
    z, msg2 = Key.activate(token, pub, pid, fl, "float-Z", floating_time_interval=300)
    check("floating deactivate frees the seats", ok and ok2 and z is not None and
          [m.Mid for m in z.activated_machines] == ["floating:float-Z"], (msg, msg2))
    ok, msg = Key.deactivate(token, pid, fl, "float-absent", floating=True)
    check("floating deactivate of an absent seat succeeds", ok, msg)

    # Trial keys.
    trial, msg = Key.create_trial_key(token, pid, "trial-machine")
    again, _ = Key.create_trial_key(token, pid, "trial-machine")
    check("create_trial_key is one per machine", trial is not None and trial == again, (trial, again, msg))
    t, msg = Key.activate(token, pub, pid, trial, "trial-machine")
    check("trial key activates with a 15-day period", t is not None and t.period == 15
          and abs(days_between(t.created, t.expires) - 15) < 0.01 and Helpers.IsOnRightMachine(t, custom_machine_code="trial-machine"), msg)
    ta = Key.create_key(token, pid, period=7, trial_activation=True, max_no_of_machines=1)[0]["key"]
    t, msg = Key.activate(token, pub, pid, ta, "ta-machine")
    check("trial activation starts the period at activation", t is not None and t.trial_activation
          and abs(days_between(datetime.datetime.now(), t.expires) - 7) < 0.01, msg)

    # Customers and listings.
    cust, msg = Customer.add_customer(token, name="Grace", email="grace@example.com", company_name="Navy")
    check("add_customer", cust is not None and cust["customerId"] > 0, msg)
    ok, msg = Key.change_customer(token, pid, key, cust["customerId"])
    lst, msg2 = Customer.get_customer_licenses(token, cust["customerId"])
    check("change_customer and get_customer_licenses", ok and lst is not None
          and [k["key"] for k in lst["licenseKeys"]] == [key], (msg, msg2))
    found, msg = Customer.get_customer_licenses_by_secret(token, cust["secret"])
    check("add_customer's secret finds the customer's licenses", found is not None
          and [k["key"] for k in found["licenseKeys"]] == [key], (found, msg))
    r = raw("customer/EditCustomer", {"token": token, "CustomerId": cust["customerId"], "Name": "Grace Hopper",
                                      "Email": "", "Secret": True})
    found, msg = Customer.get_customer_licenses_by_secret(token, r.get("secret", ""))
    gone, gone_msg = Customer.get_customer_licenses_by_secret(token, cust["secret"])
    check("EditCustomer renames and renews the secret (raw)", r["result"] == 0 and found is not None
          and found["licenseKeys"][0]["customer"]["name"] == "Grace Hopper" and gone is None
          and gone_msg == "Could not find the customer.", (r, msg, gone_msg))
    extra, _ = Customer.add_customer(token, name="Temp")
    r = raw("customer/RemoveCustomer", {"token": token, "CustomerId": extra["customerId"]})
    r2 = raw("customer/RemoveCustomer", {"token": token, "CustomerId": extra["customerId"]})
    check("RemoveCustomer (raw)", r["result"] == 0 and r2["message"] == "Could not find the customer.", (r, r2))
    keys, msg, info = Product.get_keys(token, pid)
    check("product get_keys", keys is not None and info["total"] == len(keys) >= 4 and info["pageCount"] == 1, msg)
    # SearchQuery and OrderBy, as the SDK sends them.
    res = Product.get_keys(token, pid, search_query='Customer.Email == "grace@example.com" && F2 && !Block',
                           order_by="ID descending")
    check("get_keys with a search query", res[0] is not None and [k["key"] for k in res[0]] == [key]
          and res[2] == {"returned": 1, "total": 1, "pageCount": 1}, res[1:])
    res = Product.get_keys(token, pid, order_by="ID descending")
    ids = [k["id"] for k in res[0]] if res[0] is not None else []
    check("get_keys in descending order", len(ids) == info["total"] and ids == sorted(ids, reverse=True), res[1])
    res = Product.get_keys(token, pid, search_query="Notes < 1")
    check("get_keys says what is wrong with a query", res[0] is None
          and res[1].startswith("The input parameters were incorrect. SearchQuery: at character 7:"), res[1])
    products, msg = Product.get_products(token)
    check("product get_products", products is not None and pid in [p["id"] for p in products], msg)

    data_objects(token, pub, pid)
    products, msg = Product.get_products(token)
    mine = [p for p in (products or []) if p["id"] == pid]
    check("get_products shows the product's data objects, features and key algorithm",
          mine and [d["name"] for d in mine[0]["dataObjects"]] == ["latest"] and mine[0]["keyAlgorithm"] == 1
          and mine[0]["featureDefinitions"]["f1"]["name"] == "pro", mine)
    messages(pid, other)
    expiry(token)

    # Methods Keyturn does not serve: the SDK shows why.
    ok, msg = Key.change_reseller(token, pid, key, 1)
    check("change_reseller is not supported, and says so", ok is False
          and msg == "Keyturn does not support key/ChangeReseller. Keyturn has no resellers.", msg)
    ok, msg = Key.create_key_from_template(token, 1)
    check("create_key_from_template is not supported", ok is False
          and msg.startswith("Keyturn does not support key/CreateKeyFromTemplate."), msg)
    res, msg = Subscription.record_usage_to_stripe(token, pid, key, 1)
    check("record_usage_to_stripe is not supported", res is None
          and msg.startswith("Keyturn does not support subscription/RecordUsage."), msg)
    res, msg = PaymentForm.create_session(token, 1, "EUR", 60)
    check("PaymentForm.create_session is not supported", res is None
          and msg.startswith("Keyturn does not support paymentform/CreateSession."), msg)

    # Errors the SDK shows.
    _, msg = Key.activate("kt_not-a-token", pub, pid, key, "machine-A")
    check("bad token", msg == "Unable to authenticate.", msg)
    _, msg = Key.activate(getkey_only, pub, pid, key, "machine-A")
    check("missing permission", msg == "Access denied.", msg)
    _, msg = Key.activate(token, pub, 999999, key, "machine-A")
    check("unknown product", msg == "Could not find the product.", msg)
    _, msg = Key.activate(token, pub, other, key, "machine-A")
    check("key of another product", msg == "Could not find the key.", msg)
    _, msg = Key.activate(token, pub, pid, "AAAAA-BBBBB-CCCCC-DDDDD", "machine-A")
    check("unknown key", msg == "Could not find the key.", msg)


def data_objects(token, pub, pid):
    """The SDK's Data methods, with a key-locked (-1) token as Cryptolens asks for them."""
    dtoken = native("POST", "/v1/tokens", {"name": "python data", "key_lock": -1,
                                           "permissions": DATA_PERMISSIONS + ["cryptolens:getkey"]})["token"]
    key = Key.create_key(token, pid, period=30, max_no_of_machines=1)[0]["key"]
    lic, msg = Key.activate(token, pub, pid, key, "data-machine")
    check("data: key activated", lic is not None and lic.data_objects == [], msg)

    added, msg = Data.add_data_object_to_key(dtoken, pid, key, name="credits", int_value=10)
    check("data: add_data_object_to_key returns the id", added is not None and added["id"] > 0, msg)
    dup, msg = Data.add_data_object_to_key(dtoken, pid, key, name="credits", check_for_duplicates=True)
    check("data: check_for_duplicates refuses a second one", dup is None and msg, msg)
    tree = json.dumps(["f1", ["f2", ["voice", "image"]]])
    Data.add_data_object_to_key(dtoken, pid, key, name="cryptolens_features", string_value=tree)
    res, msg = Data.increment_int_value_to_key(dtoken, pid, key, name="credits", int_value=5)
    check("data: increment by name", res is not None, msg)
    res, msg = Data.decrement_int_value_to_key(dtoken, pid, key, object_id=added["id"], int_value=20,
                                               enable_bound=True, bound=0)
    check("data: a decrement past its bound is refused", res is None and msg == BOUND, msg)
    res, msg = Data.decrement_int_value_to_key(dtoken, pid, key, object_id=added["id"], int_value=3,
                                               enable_bound=True, bound=0)
    check("data: decrement within the bound", res is not None, msg)
    listed, msg = Data.list_key_data_objects(dtoken, pid, key, name_contains="cred")
    check("data: list_key_data_objects", listed is not None and listed["dataObjects"] ==
          [{"id": added["id"], "name": "credits", "stringValue": "", "intValue": 12}], (listed, msg))

    # Methods the SDK lacks, by raw HTTP.
    r = raw("data/SetIntValueToKey", {"token": dtoken, "ProductId": pid, "Key": key, "Name": "credits",
                                       "IntValue": 40})
    check("data: SetIntValueToKey (raw)", r["result"] == 0, r)
    r = raw("data/SetStringValueToKey", {"token": dtoken, "ProductId": pid, "Key": key, "Id": added["id"],
                                          "StringValue": "top-up"})
    check("data: SetStringValueToKey (raw)", r["result"] == 0, r)

    # The license carries its data objects; feature templates read them.
    got, msg = Key.get_key(dtoken, pub, pid, key)
    names = got and [(d["Name"], d["StringValue"], d["IntValue"]) for d in got.data_objects]
    check("data: the signed license carries its data objects",
          names == [("credits", "top-up", 40), ("cryptolens_features", tree, 0)], (names, msg))
    check("data: HasFeature reads the cryptolens_features template",
          got is not None and Helpers.HasFeature(got, "f2.voice") and Helpers.HasFeature(got, "f1")
          and not Helpers.HasFeature(got, "f3") and not Helpers.HasFeature(got, "f2.video"))
    saved = got.save_as_string() if got else ""
    loaded = LicenseKey.load_from_string(pub, saved)
    check("data: data objects survive save/load", loaded is not None and len(loaded.data_objects) == 2)

    # Data objects of an activated machine.
    m, msg = Data.add_data_object_to_machine(dtoken, pid, key, "data-machine", name="runs", int_value=1)
    check("data: add_data_object_to_machine", m is not None and m["id"] > 0, msg)
    listed, msg = Data.list_machine_data_objects(dtoken, pid, key, "data-machine")
    check("data: list_machine_data_objects", listed is not None and
          [d["name"] for d in listed["dataObjects"]] == ["runs"], (listed, msg))
    res, msg = Data.add_data_object_to_machine(dtoken, pid, key, "never-activated", name="runs")
    check("data: a machine that never activated", res is None and msg.startswith("Either the machine code"), msg)
    res, msg = Data.remove_data_object_to_machine(dtoken, pid, key, "data-machine", name="runs")
    check("data: remove_data_object_to_machine", res is not None, msg)

    res, msg = Data.remove_data_object_to_key(dtoken, pid, key, name="cryptolens_features")
    listed, _ = Data.list_key_data_objects(dtoken, pid, key)
    check("data: remove_data_object_to_key", res is not None and
          [d["name"] for d in listed["dataObjects"]] == ["credits"], msg)

    # Key locks, as Cryptolens documents them for data objects.
    unlocked = native("POST", "/v1/tokens", {"name": "unlocked", "permissions": DATA_PERMISSIONS})["token"]
    res, msg = Data.list_key_data_objects(unlocked, pid, key)
    check("data: a token without key lock -1 is refused", res is None and msg == KEY_OR_PERMISSION, msg)
    res, msg = Data.list_key_data_objects(dtoken, pid, "AAAAA-BBBBB-CCCCC-DDDDD")
    check("data: an unknown key", res is None and msg == KEY_OR_PERMISSION, msg)

    # The generic methods (by owner or id), for server-side code with an unlocked token.
    r = raw("data/AddDataObject", {"token": unlocked, "ReferencerType": 1, "ReferencerId": pid,
                                   "Name": "latest", "StringValue": "2.0"})
    check("data: AddDataObject to the product (raw)", r["result"] == 0 and r["id"] > 0, r)
    r = raw("data/IncrementIntValue", {"token": unlocked, "Id": r["id"], "IntValue": 2})
    check("data: IncrementIntValue by id (raw)", r["result"] == 0, r)
    r = raw("data/ListDataObjects", {"token": unlocked, "ReferencerType": 1, "ReferencerId": pid})
    check("data: ListDataObjects of the product (raw)",
          r["result"] == 0 and [(d["name"], d["intValue"]) for d in r["dataObjects"]] == [("latest", 2)], r)


def expiry(token):
    """Expired keys: returned as Cryptolens returns them, or blocked when the product says so."""
    pid = native("POST", "/v1/products", {"name": "Python expiry", "features": []})["id"]
    pub = native("GET", "/v1/products/%d/public-key?format=rsa-xml" % pid).strip()
    key = Key.create_key(token, pid, period=30, max_no_of_machines=1)[0]["key"]
    lid = native("GET", "/v1/licenses/by-key/" + key)["id"]
    native("PATCH", "/v1/licenses/%d" % lid, {"expires": "2020-01-01T00:00:00Z"})
    lic, msg = Key.activate(token, pub, pid, key, "expired-machine")
    check("expiry: an expired key is returned; HasNotExpired says it expired",
          lic is not None and not Helpers.HasNotExpired(lic) and lic.expires.year == 2020, msg)
    got, msg = Key.get_key(token, pub, pid, key)
    check("expiry: get_key returns an expired key", got is not None and not got.block, msg)
    native("PATCH", "/v1/products/%d" % pid, {"block_expired_licenses": True})
    lic, msg = Key.activate(token, pub, pid, key, "expired-machine")
    check("expiry: with block expired licenses, activate answers blocked", lic is None and msg == BLOCKED, msg)
    got, msg = Key.get_key(token, pub, pid, key)
    check("expiry: with block expired licenses, get_key answers blocked", got is None and msg == BLOCKED, msg)
    ok, msg = Key.deactivate(token, pid, key, "expired-machine")
    check("expiry: with block expired licenses, deactivate answers blocked", not ok and msg == BLOCKED, msg)
    products, msg = Product.get_products(token)
    mine = [p for p in (products or []) if p["id"] == pid]
    check("expiry: get_products shows blockExpiredLicenses",
          mine and mine[0]["featureDefinitions"]["blockExpiredLicenses"] is True, mine)


def messages(pid, other):
    """The SDK's Message methods against messages posted through the native API."""
    native("POST", "/v1/messages", {"content": "Version 2 is out", "channel": "stable"})
    native("POST", "/v1/messages", {"content": "Beta 5", "channel": "beta", "product_id": pid})
    native("POST", "/v1/messages", {"content": "Other product", "product_id": other})
    native("POST", "/v1/messages", {"content": "Old news", "created": "2020-01-01T00:00:00Z"})
    mtoken = native("POST", "/v1/tokens", {"name": "messages", "product_id": pid,
                                           "permissions": ["cryptolens:getmessages",
                                                           "cryptolens:editmessages"]})["token"]
    got, msg = Message.get_messages(mtoken)
    contents = got and [m["content"] for m in got]
    check("messages: get_messages shows the product's and everyone's",
          contents == ["Old news", "Version 2 is out", "Beta 5"], (contents, msg))
    check("messages: fields and types", got is not None and all(
        isinstance(m["id"], int) and isinstance(m["created"], int) and isinstance(m["channel"], str)
        for m in got), got)
    got, msg = Message.get_messages(mtoken, channel="stable")
    check("messages: by channel", got is not None and [m["content"] for m in got] == ["Version 2 is out"], msg)
    got, msg = Message.get_messages(mtoken, time=1600000000)
    check("messages: newer than a time", got is not None and "Old news" not in [m["content"] for m in got], msg)
    created, msg = Message.create_message(mtoken, content="Patch 5.1", channel="beta")
    check("messages: create_message returns the id", isinstance(created, int) and created > 0, (created, msg))
    got, _ = Message.get_messages(mtoken, channel="beta")
    check("messages: the new message is listed", got is not None and
          [m["content"] for m in got] == ["Beta 5", "Patch 5.1"], got)
    removed, msg = Message.remove_message(mtoken, created)
    got, _ = Message.get_messages(mtoken, channel="beta")
    check("messages: remove_message", removed is not None and [m["content"] for m in got] == ["Beta 5"], msg)
    denied = native("POST", "/v1/tokens", {"name": "no messages", "permissions": ["cryptolens:getkey"]})["token"]
    got, msg = Message.get_messages(denied)
    check("messages: without permission", got is None and msg == "Access denied.", msg)


try:
    run()
except Exception as e:  # a crash is a failure, never a silent pass
    import traceback
    traceback.print_exc()
    check("python conformance ran to the end", False, repr(e))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
